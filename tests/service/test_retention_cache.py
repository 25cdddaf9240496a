"""`bridge serve` keeps its cache bounded: entries older than the kept age go, and the oldest beyond
`max_cache_entries`. The entries' write times are set, so nothing here waits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.engine.cache import FileCache, prune_cache
from bridge.service.retention import CacheRetention, keep_pruning

NOW = 1_000_000.0
DAY = 86_400.0


def put(cache_root: Path, name: str, at: float) -> str:
    """A cached result written at `at`; returns its key."""
    key = f"v2-{name.encode().hex():0<64}"
    FileCache(cache_root, clock=lambda: at).put(key, {"loss": 0.1}, run_id=name)
    path = next(cache_root.rglob(f"{key}.json"))
    os.utime(path, (at, at))
    return key


def kept(cache_root: Path, keys: dict[str, str]) -> set[str]:
    cache = FileCache(cache_root, clock=lambda: NOW)
    return {name for name, key in keys.items() if cache.get(key, ttl_s=None) is not None}


def test_entries_older_than_the_kept_age_are_removed(tmp_path: Path) -> None:
    keys = {name: put(tmp_path, name, NOW - age) for name, age in [("old", 3 * DAY), ("week", 7 * DAY), ("new", 60)]}
    leftover = tmp_path / "ab" / "v2-ab12.123.tmp"  # a write that died half-way
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_text("{")
    os.utime(leftover, (NOW - 2 * DAY, NOW - 2 * DAY))

    removed = prune_cache(tmp_path, keep_s=DAY, max_entries=100, now=NOW)

    assert removed == 3
    assert kept(tmp_path, keys) == {"new"}
    assert not leftover.exists()


def test_beyond_max_entries_the_oldest_go_first(tmp_path: Path) -> None:
    keys = {f"e{i}": put(tmp_path, f"e{i}", NOW - 100 * i) for i in range(6)}

    removed = prune_cache(tmp_path, keep_s=DAY, max_entries=4, now=NOW)

    assert removed == 2
    assert kept(tmp_path, keys) == {"e0", "e1", "e2", "e3"}


def test_a_cache_that_was_never_written_is_fine(tmp_path: Path) -> None:
    assert prune_cache(tmp_path / "cache", keep_s=DAY, max_entries=1, now=NOW) == 0


async def test_keep_pruning_also_prunes_the_cache_when_asked(tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    put(cache_root, "a", 1.0)  # written long ago (the loop prunes at the clock's now)
    put(cache_root, "b", 2.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError  # the service stops after the first pass

    retention = CacheRetention(cache_root, keep_s=DAY, max_entries=10)
    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await keep_pruning(tmp_path, every_s=60, keep_s=DAY, max_runs=10, active=set(), cache=retention, sleep=sleep)

    assert list(cache_root.rglob("*.json")) == []
    assert [e["removed"] for e in logs if e["event"] == "cache_pruned"] == [2]
