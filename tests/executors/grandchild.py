"""A run that leaves a grandchild behind: `sh` starts a second `sh`, which starts `sleep 300` ignoring SIGTERM
and writes its pid to a file, so tests can watch whether what a run started outlives it.

The run then waits for a gate file and exits with the given status, or (`hang`) sleeps until it is stopped.
"""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

from tests.polling import eventually

SCRIPT = r"""
sh -c 'trap "" TERM; sleep 300 & echo $! > "$1"; wait' grandparent "$1" &
while [ ! -s "$1" ]; do sleep 0.01; done
case "$2" in
  hang) sleep 300 ;;
  *) while [ ! -e "$3" ]; do sleep 0.01; done; exit "$2" ;;
esac
"""


def argv(pidfile: Path, mode: str, gate: Path | None = None) -> list[str]:
    """The run's argv: `mode` is an exit status to end with once `gate` exists, or `hang`."""
    return ["sh", "-c", SCRIPT, "run", str(pidfile), mode, str(gate or pidfile.with_name("gate"))]


def _written_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


class Grandchild:
    """The `sleep` a run left, held by a pidfd: its pid cannot name another process while the test watches."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = os.pidfd_open(pid)
        assert b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes(), "the pid file does not name the grandchild"

    @classmethod
    async def of(cls, pidfile: Path) -> Grandchild:
        """Wait until the run wrote the pid file, then hold its grandchild."""
        await eventually(lambda: _written_pid(pidfile) is not None, timeout=30)
        pid = _written_pid(pidfile)
        assert pid is not None
        return cls(pid)

    def ended(self) -> bool:
        """A pidfd turns readable once its process has ended."""
        return bool(select.select([self._fd], [], [], 0)[0])

    async def wait_ended(self, timeout: float = 15) -> None:
        await eventually(self.ended, timeout=timeout)

    def close(self) -> None:
        """Kill it if a test failed before it was killed, and let go of the pidfd."""
        if not self.ended():
            signal.pidfd_send_signal(self._fd, signal.SIGKILL)
        os.close(self._fd)
