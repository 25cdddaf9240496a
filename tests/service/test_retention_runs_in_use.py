"""Pruning never takes the folder of a run in use, however old or far beyond the limits: a running run keeps its
logs and metrics and still reports its outputs. `bridge serve` prunes in the background (`keep_pruning`), the
slow parts in a worker thread, the check of what is in use on the event loop where runs start."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.contract.results import RunStatus
from bridge.engine.scheduler import OperationRunner
from bridge.executors.workspace import RunPaths, runs_dir
from bridge.service.retention import keep_pruning, prune_runs, prune_runs_async
from tests.engine_support import Engine
from tests.polling import eventually

NOW = 1_000_000.0


def make_run(workdir: Path, run_id: str, at: float) -> None:
    paths = RunPaths.for_run(workdir, run_id)
    paths.attempt(1).mkdir(parents=True)
    for path in (paths.attempt(1), paths.artifacts / "attempts", paths.artifacts):
        os.utime(path, (at, at))


def left(workdir: Path) -> set[str]:
    return {p.name for p in runs_dir(workdir).iterdir()}


def test_a_run_in_use_is_kept_and_does_not_count_against_max_runs(tmp_path: Path) -> None:
    make_run(tmp_path, "oldest-but-running", NOW - 100)
    make_run(tmp_path, "older", NOW - 50)
    make_run(tmp_path, "newest", NOW - 10)
    assert prune_runs(tmp_path, keep_s=3600, max_runs=1, active={"oldest-but-running"}, now=NOW) == 1
    assert left(tmp_path) == {"oldest-but-running", "newest"}


async def test_a_running_run_keeps_its_folder_and_reports_its_outputs(engine: Engine) -> None:
    gate = engine.root / "gate"
    plan = engine.plan(engine.operation([{"wait_for": str(gate), "values": "0.4,0.3"}]))
    (run,) = plan.runs
    runner = OperationRunner(plan, engine.runtime())
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=20, interval=0.02)
    in_use = {run.run_id}
    assert await prune_runs_async(engine.workdir, keep_s=0, max_runs=0, active=in_use, now=time.time() + 3600) == 0
    gate.touch()
    (result,) = (await task).results
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == {"loss": 0.3}
    in_use.clear()  # its operation is over
    assert prune_runs(engine.workdir, keep_s=0, max_runs=0, active=in_use, now=time.time() + 3600) == 1
    assert left(engine.workdir) == set()


class StartsAgainWhileRanked:
    """The run ids in use, where `run_id` starts again just after the pass has ranked it as finished."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._asked = 0

    def __contains__(self, run_id: object) -> bool:
        if run_id != self._run_id:
            return False
        self._asked += 1
        return self._asked > 1  # not in use when ranked, in use by the time its folder would move


async def test_a_run_that_starts_again_during_a_pass_keeps_its_folder(tmp_path: Path) -> None:
    make_run(tmp_path, "resent", NOW - 100)
    make_run(tmp_path, "done", NOW - 100)
    removed = await prune_runs_async(tmp_path, keep_s=0, max_runs=0, active=StartsAgainWhileRanked("resent"), now=NOW)
    assert removed == 1
    assert left(tmp_path) == {"resent"}


async def test_keep_pruning_prunes_at_once_then_every_interval(tmp_path: Path) -> None:
    make_run(tmp_path, "before-start", NOW - 10 * 86_400)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            make_run(tmp_path, "finished-meanwhile", NOW - 10 * 86_400)
        else:
            raise asyncio.CancelledError  # the service stops: it cancels the task

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await keep_pruning(tmp_path, every_s=60, keep_s=86_400, max_runs=1000, active=set(), sleep=sleep)
    assert waits == [60, 60]
    assert left(tmp_path) == set()
    assert [e["removed"] for e in logs if e["event"] == "runs_pruned"] == [1, 1]


async def test_a_failed_pass_is_logged_and_the_next_one_runs(tmp_path: Path) -> None:
    runs_dir(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    runs_dir(tmp_path).write_text("not a folder\n")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await keep_pruning(tmp_path, every_s=5, keep_s=0, max_runs=0, active=set(), sleep=sleep)
    assert [e["event"] for e in logs] == ["runs_prune_failed", "runs_prune_failed"]
