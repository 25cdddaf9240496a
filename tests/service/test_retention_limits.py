"""`prune_runs` removes the folders of finished runs idle for longer than `keep_s`, and the oldest beyond the
newest `max_runs`; a run's last activity is its newest file, not when its folder was made. The clock is
injected (`now`) and the folders' times set, so nothing here waits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.executors.workspace import RunPaths, runs_dir
from bridge.service.retention import prune_runs

NOW = 1_000_000.0
DAY = 86_400.0


def make_run(workdir: Path, run_id: str, at: float, *, attempts: int = 1, last_write: float | None = None) -> Path:
    """A run folder as the executor leaves it, everything last modified at `at` (the last attempt's logs at
    `last_write` if given)."""
    paths = RunPaths.for_run(workdir, run_id)
    paths.outputs.mkdir(parents=True)
    files: list[Path] = []
    for n in range(1, attempts + 1):
        attempt = paths.attempt(n)
        attempt.mkdir(parents=True)
        for name in ("stdout.log", "stderr.log", "metrics.jsonl"):
            (attempt / name).write_text("x\n")
            files.append(attempt / name)
    # Files first, then their folders, deepest first: making an entry changes its folder's time.
    folders = sorted({f.parent for f in files} | {paths.outputs, paths.artifacts / "attempts", paths.artifacts})
    for path in [*files, *sorted(folders, key=lambda p: len(p.parts), reverse=True)]:
        os.utime(path, (at, at))
    if last_write is not None:
        os.utime(paths.attempt(attempts) / "stdout.log", (last_write, last_write))
    return paths.artifacts


def left(workdir: Path) -> set[str]:
    return {p.name for p in runs_dir(workdir).iterdir()}


def test_runs_idle_longer_than_keep_s_are_removed(tmp_path: Path) -> None:
    make_run(tmp_path, "old", NOW - 3 * DAY)
    make_run(tmp_path, "recent", NOW - DAY / 2)
    make_run(tmp_path, "just-at-the-limit", NOW - DAY)
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=100, active=set(), now=NOW) == 1
    assert left(tmp_path) == {"recent", "just-at-the-limit"}


def test_beyond_max_runs_the_oldest_are_removed(tmp_path: Path) -> None:
    for n in range(5):
        make_run(tmp_path, f"r{n}", NOW - 100 + n)  # r4 is the newest
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=2, active=set(), now=NOW) == 3
    assert left(tmp_path) == {"r3", "r4"}


def test_both_limits_apply_together(tmp_path: Path) -> None:
    make_run(tmp_path, "stale", NOW - 2 * DAY)
    for n in range(3):
        make_run(tmp_path, f"fresh{n}", NOW - 10 + n)
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=2, active=set(), now=NOW) == 2
    assert left(tmp_path) == {"fresh1", "fresh2"}


def test_a_run_started_long_ago_that_wrote_lately_is_kept(tmp_path: Path) -> None:
    make_run(tmp_path, "long", NOW - 10 * DAY, attempts=2, last_write=NOW - 60)
    make_run(tmp_path, "short", NOW - 2 * DAY)
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=100, active=set(), now=NOW) == 1
    assert left(tmp_path) == {"long"}


def test_a_second_pass_finds_nothing_more(tmp_path: Path) -> None:
    make_run(tmp_path, "old", NOW - 3 * DAY)
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=0, active=set(), now=NOW) == 1
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=0, active=set(), now=NOW) == 0
    assert left(tmp_path) == set()


def test_without_a_runs_folder_there_is_nothing_to_do(tmp_path: Path) -> None:
    assert prune_runs(tmp_path / "never-used", keep_s=0, max_runs=0, active=set(), now=NOW) == 0


def test_what_is_not_a_run_folder_is_left_alone(tmp_path: Path) -> None:
    make_run(tmp_path, "old", NOW - 3 * DAY)
    (runs_dir(tmp_path) / "notes.txt").write_text("mine\n")
    (runs_dir(tmp_path) / ".hidden").mkdir()
    (runs_dir(tmp_path) / "link").symlink_to(tmp_path)
    assert prune_runs(tmp_path, keep_s=0, max_runs=0, active=set(), now=NOW) == 1
    assert left(tmp_path) == {"notes.txt", ".hidden", "link"}
    assert tmp_path.exists()


def test_a_pass_deletes_what_an_interrupted_pass_left(tmp_path: Path) -> None:
    leftover = runs_dir(tmp_path) / ".pruning" / "a-pass" / "r"
    (leftover / "attempts" / "1").mkdir(parents=True)
    (leftover / "attempts" / "1" / "stdout.log").write_text("x\n")
    make_run(tmp_path, "recent", NOW)
    assert prune_runs(tmp_path, keep_s=DAY, max_runs=10, active=set(), now=NOW) == 0
    assert left(tmp_path) == {"recent"}


def test_negative_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        prune_runs(tmp_path, keep_s=-1, max_runs=10, active=set(), now=NOW)
    with pytest.raises(ValueError, match="must be >= 0"):
        prune_runs(tmp_path, keep_s=1, max_runs=-1, active=set(), now=NOW)
