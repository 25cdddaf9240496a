"""Polyaxon's cache for runs: a run whose component and params match an earlier succeeded run, within `ttl`,
is answered with that run's outputs instead of running again.

The key (`cache_key`) is a hash of everything that shapes the run: the component's inputs and outputs with all
their fields (`type`, `value`, `isFlag`, `argFormat`, `toEnv`, ...), its `run` section (container with image,
command, args, env, workingDir; init), and the run's params (only those named in `cache.io` when it is set). So
the same configuration under another operation or study hits, and two components that differ in any of those
never share a result. The hash is `bridge.contract.identity.digest` (of its canonical JSON). Keys carry a version prefix
(`KEY_VERSION`): entries written under another key format are never read, and are pruned like any old entry.

Entries are one small JSON file each under `root/<2 hex>/`; `prune_cache` keeps the folder bounded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.contract.identity import digest
from bridge.logs import get_logger
from bridge.polyaxon import V1Component

log = get_logger(__name__)

KEY_VERSION = "v2"
"""The key format: v1 hashed the run section and params alone (bare hex); v2 the whole run shape."""


def run_shape(component: V1Component) -> dict[str, Any]:
    """What of a component shapes its runs: inputs and outputs with every field, and the run section."""
    return component.model_dump(mode="json", by_alias=True, exclude_none=True, include={"inputs", "outputs", "run"})


def cache_key(shape: Mapping[str, Any], params: Mapping[str, Any], io: Sequence[str] | None) -> str:
    """The key of a run's result: its component's `run_shape` and its params (restricted to `io`)."""
    chosen = {k: v for k, v in params.items() if io is None or k in io}
    return f"{KEY_VERSION}-{digest({'version': KEY_VERSION, 'component': shape, 'params': chosen})}"


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
        digest = key.rpartition("-")[2]  # spread by the hash, not by the version prefix
        return self._root / digest[:2] / f"{key}.json"

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
        # Escaped to ASCII: a run's outputs may hold a lone surrogate, which UTF-8 cannot write.
        tmp.write_text(json.dumps(payload, separators=(",", ":"), default=str), encoding="utf-8")
        os.replace(tmp, path)
        log.debug("cache_put", key=key, run_id=run_id)


def prune_cache(root: Path, *, keep_s: float, max_entries: int, now: float | None = None) -> int:
    """Remove the entries written more than `keep_s` seconds before `now` (default: the clock) and, of the rest,
    all but the newest `max_entries`; returns how many were removed. Reads a directory per key prefix: call it
    off the event loop. A `get` racing with it sees a miss, never a broken entry (files go whole)."""
    if keep_s < 0 or max_entries < 0:
        raise ValueError(f"keep_s and max_entries must be >= 0, got {keep_s} and {max_entries}")
    now = time.time() if now is None else now
    entries: list[tuple[float, str]] = []
    stale: list[str] = []
    for folder in _scan(root):
        if not folder.is_dir(follow_symlinks=False):
            continue
        for file in _scan(Path(folder.path)):
            try:
                written = file.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # replaced or removed meanwhile
            if written < now - keep_s:
                stale.append(file.path)  # an old entry, an old key format, or a write that died half-way
            elif file.name.endswith(".json"):
                entries.append((written, file.path))
    entries.sort(reverse=True)  # newest first
    stale += [path for _, path in entries[max_entries:]]
    removed = 0
    for path in stale:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _scan(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
