"""Removing the folders of finished runs from `<workdir>/runs/`, which `bridge serve` would otherwise grow forever.

A pass ranks the run folders not in use by their last activity (the newest modification time of the folder, its
outputs folder, its attempt folders and their files: logs and metrics) and removes those idle for more than
`keep_s` and those beyond the newest `max_runs`. A folder in use, its run id in `active`, is never touched and
does not count.

Each folder is first moved aside into `runs/.pruning/`, then deleted. The move is where `active` is looked at,
so it is the one step that must not interleave with a run starting in that folder: `prune_runs_async` makes the
moves on the event loop, where runs start, and ranks and deletes in a worker thread (deleting a few thousand
folders takes seconds).

The cache (`<workdir>/cache/`) is pruned by the same loop when `keep_pruning` is given a `CacheRetention`: entries
older than its `keep_s`, and the oldest beyond `max_entries` (see `bridge.engine.cache.prune_cache`; no entry is in use
the way a run folder is, so all of it happens in a worker thread).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from bridge.engine.cache import prune_cache
from bridge.executors.workspace import runs_dir

log = structlog.get_logger(__name__)

TRASH = ".pruning"
"""The folder under `runs/` that holds run folders being deleted (a run id never starts with a dot)."""
MOVES_PER_TURN = 256
"""Moves made on the event loop before it gets to run something else."""


def _last_activity(folder: Path) -> float:
    """The newest modification time of the run folder, its outputs folder, its attempts and their files."""
    newest = folder.stat().st_mtime
    for sub in (folder / "outputs", folder / "attempts"):
        try:
            newest = max(newest, sub.stat().st_mtime)
        except FileNotFoundError:
            continue
    try:
        with os.scandir(folder / "attempts") as it:
            attempts = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return newest
    for attempt in attempts:
        try:
            newest = max(newest, attempt.stat(follow_symlinks=False).st_mtime)
            if attempt.is_dir(follow_symlinks=False):
                with os.scandir(attempt.path) as files:
                    for f in files:
                        newest = max(newest, f.stat(follow_symlinks=False).st_mtime)
        except FileNotFoundError:
            continue
    return newest


def expired_runs(
    workdir: Path, *, keep_s: float, max_runs: int, active: Container[str], now: float | None = None
) -> list[str]:
    """The run ids whose folders a pass removes, oldest first: idle for more than `keep_s` seconds at `now`
    (default: the clock), or beyond the newest `max_runs`; never one in `active`. Reads only."""
    if keep_s < 0 or max_runs < 0:
        raise ValueError(f"keep_s and max_runs must be >= 0, got {keep_s} and {max_runs}")
    now = time.time() if now is None else now
    try:
        with os.scandir(runs_dir(workdir)) as it:
            entries = list(it)
    except FileNotFoundError:
        return []
    ranked: list[tuple[float, str]] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in active or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            ranked.append((_last_activity(Path(entry.path)), entry.name))
        except FileNotFoundError:
            continue  # removed meanwhile
    ranked.sort(reverse=True)  # newest first
    expired = [run_id for rank, (at, run_id) in enumerate(ranked) if rank >= max_runs or at < now - keep_s]
    return expired[::-1]


def _move_aside(workdir: Path, run_ids: Sequence[str], active: Container[str]) -> int:
    """Move these run folders out of `runs/` into a fresh folder under `runs/.pruning/`, skipping any run
    now in `active`; returns how many were moved."""
    root = runs_dir(workdir)
    batch = root / TRASH / uuid.uuid4().hex
    moved = 0
    for run_id in run_ids:
        if run_id in active:
            continue  # started again since it was ranked
        if moved == 0:
            batch.mkdir(parents=True)
        try:
            (root / run_id).rename(batch / run_id)
        except FileNotFoundError:
            continue
        moved += 1
    return moved


def _empty_trash(workdir: Path) -> None:
    """Delete what was moved aside, this pass's and any an interrupted pass left. What cannot be deleted (a
    file made read-only by a run, ...) is logged, left there, and tried again by the next pass."""
    trash = runs_dir(workdir) / TRASH
    if not trash.exists():
        return
    shutil.rmtree(trash, ignore_errors=True)
    if trash.exists():
        log.warning("run_folders_not_deleted", path=str(trash))


def prune_runs(workdir: Path, *, keep_s: float, max_runs: int, active: Container[str], now: float | None = None) -> int:
    """Remove the folders of finished runs idle for more than `keep_s` seconds or beyond the newest `max_runs`,
    never a folder of a run in `active`; returns how many were removed. Everything here and now: call it on the
    thread that starts runs (see `prune_runs_async` for a pass that keeps the event loop free)."""
    expired = expired_runs(workdir, keep_s=keep_s, max_runs=max_runs, active=active, now=now)
    moved = _move_aside(workdir, expired, active)
    _empty_trash(workdir)
    return moved


async def prune_runs_async(
    workdir: Path, *, keep_s: float, max_runs: int, active: Container[str], now: float | None = None
) -> int:
    """`prune_runs` from a coroutine on the loop that starts runs: ranking and deleting in a worker thread, the
    moves (where `active` is consulted: pass the live container, not a copy) on the loop."""
    expired = await asyncio.to_thread(expired_runs, workdir, keep_s=keep_s, max_runs=max_runs, active=active, now=now)
    moved = 0
    for start in range(0, len(expired), MOVES_PER_TURN):
        if start:
            await asyncio.sleep(0)
        moved += _move_aside(workdir, expired[start : start + MOVES_PER_TURN], active)
    await asyncio.to_thread(_empty_trash, workdir)
    return moved


@dataclass(frozen=True)
class CacheRetention:
    """How much of the cache under `root` a pruning pass keeps: entries younger than `keep_s` seconds (at least
    the longest `cache.ttl` that should still hit), at most `max_entries` of them."""

    root: Path
    keep_s: float
    max_entries: int


async def keep_pruning(
    workdir: Path,
    *,
    every_s: float,
    keep_s: float,
    max_runs: int,
    active: Container[str],
    cache: CacheRetention | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """A pass at once, then one every `every_s` seconds, until cancelled: run folders, then the cache when
    `cache` is given. A failed pass is logged, and the next one tries again."""
    while True:
        try:
            removed = await prune_runs_async(workdir, keep_s=keep_s, max_runs=max_runs, active=active)
        except OSError as exc:
            log.warning("runs_prune_failed", workdir=str(workdir), error=str(exc))
        else:
            if removed:
                log.info("runs_pruned", removed=removed, keep_s=keep_s, max_runs=max_runs)
        if cache is not None:
            await _prune_cache_once(cache)
        await sleep(every_s)


async def _prune_cache_once(cache: CacheRetention) -> None:
    try:
        removed = await asyncio.to_thread(prune_cache, cache.root, keep_s=cache.keep_s, max_entries=cache.max_entries)
    except OSError as exc:
        log.warning("cache_prune_failed", root=str(cache.root), error=str(exc))
    else:
        if removed:
            log.info("cache_pruned", removed=removed, keep_s=cache.keep_s, max_entries=cache.max_entries)
