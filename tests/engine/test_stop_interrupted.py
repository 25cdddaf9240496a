"""An interrupt is a stop reason like the others, and the only one that is no answer: the runs it stopped or
skipped are left for the next run of the same operation, which runs them again."""

from __future__ import annotations

import asyncio

from bridge.contract.results import RunStatus, StopReason
from bridge.engine.scheduler import OperationRunner
from tests.engine_support import Engine
from tests.polling import eventually


async def test_an_interrupt_leaves_its_runs_to_run_again_while_a_stop_is_final(engine: Engine) -> None:
    gate = engine.root / "gate"
    op = engine.operation([{"wait_for": str(gate)}, {}], matrix={"concurrency": 1})
    runtime = engine.runtime(grace=5)
    runner = OperationRunner(engine.plan(op), runtime)
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=20, interval=0.02)
    runner.stop("interrupted by SIGINT", kind=StopReason.INTERRUPTED)
    outcome = await task
    assert outcome.interrupted
    assert [r.status for r in outcome.results] == [RunStatus.STOPPED, RunStatus.SKIPPED]
    assert all(r.error is not None and r.error.type == "interrupted" for r in outcome.results)

    gate.touch()
    again = await OperationRunner(engine.plan(op), runtime).run()
    assert [r.status for r in again.results] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert again.results[0].attempt == 2


async def test_a_stop_is_final_and_is_not_run_again(engine: Engine) -> None:
    gate = engine.root / "gate"
    op = engine.operation([{"wait_for": str(gate)}], matrix={"concurrency": 1})
    runtime = engine.runtime(grace=5)
    runner = OperationRunner(engine.plan(op), runtime)
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=20, interval=0.02)
    runner.stop("operator asked", kind=StopReason.STOPPED)
    assert not (await task).interrupted

    gate.touch()
    (result,) = (await OperationRunner(engine.plan(op), runtime).run()).results
    assert result.status is RunStatus.STOPPED and result.error is not None and result.error.type == "stopped"
    assert len(engine.executions()) == 1
