"""Liveness and readiness, as the consume loop sees them: what `/healthz` and `/readyz` report.

Liveness is consumption progress, not "the process answers": aiokafka's consumer can hang silently after a
broker restart, so the consume loop calls `Health.beat()` each time it polls the broker, and `/healthz` turns
503 when the beats stop for longer than the stall window.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    """What `/healthz` and `/readyz` report: consumption progress and readiness, both set by the service.

    Creation counts as the first beat, so the service has `stall_after_s` to connect and poll for the first
    time. `clock` is any monotonic clock in seconds; tests pass a fake one instead of sleeping.
    """

    def __init__(self, *, stall_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_after_s <= 0:
            raise ValueError(f"stall_after_s must be positive, got {stall_after_s}")
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._last_beat = clock()
        self._ready = False
        self._ready_reason = "starting"

    def beat(self) -> None:
        """Record progress: the consume loop polled the broker (whether or not records came back)."""
        self._last_beat = self._clock()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Set readiness (connected and partitions assigned) and, when not ready, why."""
        self._ready = ready
        self._ready_reason = "ok" if ready else (reason or "not ready")

    def healthy(self, now: float | None = None) -> tuple[bool, str]:
        """`(True, "ok")` while the last beat is within the stall window at `now` (default: the clock)."""
        now = self._clock() if now is None else now
        silent_s = now - self._last_beat
        if silent_s > self.stall_after_s:
            window = f"{self.stall_after_s:g}s"
            return False, f"no consumption progress for {silent_s:.1f}s (stall window {window})"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """`(True, "ok")` once the service says it is ready, else `(False, reason)`."""
        return self._ready, self._ready_reason
