"""Stopping an operation or one run: running attempts get SIGTERM then SIGKILL after the grace, pending runs are
skipped, and nothing new starts."""

from __future__ import annotations

import asyncio
import time

from bridge.contract.results import RunStatus, StopReason
from bridge.engine.scheduler import OperationRunner
from tests.engine_support import Engine
from tests.polling import eventually


async def test_stop_signals_running_runs_and_skips_the_rest(engine: Engine) -> None:
    gate = engine.root / "never-opened"
    op = engine.operation([{"wait_for": str(gate)} for _ in range(4)], matrix={"concurrency": 2})
    runner = OperationRunner(engine.plan(op), engine.runtime(grace=5))
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 2, timeout=20, interval=0.02)
    runner.stop("operator asked", kind=StopReason.STOPPED)
    outcome = await task
    statuses = [r.status for r in outcome.results]
    assert statuses.count(RunStatus.STOPPED) == 2
    assert statuses.count(RunStatus.SKIPPED) == 2
    assert len(engine.executions()) == 2  # nothing new started after the stop
    for r in outcome.results:
        assert r.error is not None and r.error.message == "operator asked"


async def test_a_run_ignoring_sigterm_is_killed_after_the_grace(engine: Engine) -> None:
    gate = engine.root / "never-opened"
    op = engine.operation([{"wait_for": str(gate), "ignore_sigterm": True}])
    runner = OperationRunner(engine.plan(op), engine.runtime(grace=0.5))
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=20, interval=0.02)
    began = time.monotonic()
    runner.stop("enough")
    (result,) = (await task).results
    assert result.status is RunStatus.STOPPED
    assert 0.4 < time.monotonic() - began < 10


async def test_stop_one_run_leaves_the_others_running(engine: Engine) -> None:
    gate = engine.root / "gate"
    op = engine.operation([{"wait_for": str(gate)}, {"wait_for": str(gate)}], matrix={"concurrency": 2})
    plan = engine.plan(op)
    runner = OperationRunner(plan, engine.runtime())
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 2, timeout=20, interval=0.02)
    assert runner.stop_run(plan.runs[0].run_id, "not promising")
    assert not runner.stop_run("no-such-run", "?")
    await eventually(lambda: plan.runs[0].run_id not in runner._handles, timeout=20, interval=0.02)
    gate.touch()
    first, second = (await task).results
    assert first.status is RunStatus.STOPPED
    assert first.error is not None and first.error.message == "not promising"
    assert second.status is RunStatus.SUCCEEDED
