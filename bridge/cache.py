"""Polyaxon's cache for runs: a run whose component and params match an earlier succeeded run, within `ttl`,
is answered with that run's outputs instead of running again.

The key is a hash of the component's `run` section and the run's params (only those named in `cache.io` when
it is set), so the same configuration under another operation or study hits too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces; what every hash in the bridge is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(run_section: Mapping[str, Any], params: Mapping[str, Any], io: Sequence[str] | None) -> str:
    """The key of a run's result: its component's run section and its params (restricted to `io`)."""
    chosen = {k: v for k, v in params.items() if io is None or k in io}
    digest = hashlib.sha256(canonical_json({"run": run_section, "params": chosen}).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A succeeded run's outputs, and where they came from."""

    outputs: dict[str, Any]
    run_id: str
    created_at: float

    def fresh(self, ttl_s: float | None, now: float) -> bool:
        """True while the entry is younger than `ttl_s` (no ttl: forever)."""
        return ttl_s is None or (now - self.created_at) < ttl_s


class FileCache:
    """Cache entries as one small JSON file each under `root`, written atomically (rename)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self._root = root
        self._clock = clock

    def _path(self, key: str) -> Path:
        return self._root / key[:2] / f"{key}.json"

    def get(self, key: str, ttl_s: float | None) -> CacheEntry | None:
        """The entry for `key` if there is a fresh one."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            entry = CacheEntry(
                outputs=dict(data["outputs"]),
                run_id=str(data["run_id"]),
                created_at=float(data["created_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry if entry.fresh(ttl_s, self._clock()) else None

    def put(self, key: str, outputs: Mapping[str, Any], run_id: str) -> None:
        """Remember a succeeded run's outputs under `key`."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        payload = {"outputs": dict(outputs), "run_id": run_id, "created_at": self._clock()}
        tmp.write_text(canonical_json(payload), encoding="utf-8")
        os.replace(tmp, path)
        log.debug("cache_put", key=key, run_id=run_id)
