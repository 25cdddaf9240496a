"""The executor seam's contract, the same cases against every executor: the local one, and Ray on a real
three-node cluster (tests/ray_cluster.py; skipped outside a private network namespace).

Through the real scheduler: a run's metrics come back while it runs and its outputs at its end; it gets
BRIDGE_NODE_ID; its stderr explains a failure and is kept in the bridge's work dir; stop, timeout and a median
early stop end the process itself; a failed attempt is retried as attempt 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bridge.contract.results import ProgressEvent, RunResult, RunStatus
from bridge.engine.scheduler import OperationRunner
from bridge.executors.base import Executor
from bridge.executors.local import LocalExecutor
from bridge.executors.workspace import RunPaths
from tests.engine_support import Engine
from tests.polling import eventually


@pytest.fixture(params=["local", "ray"])
def executor(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Executor]:
    """Each executor, keeping its files (logs streamed back, for Ray) in the engine's work dir."""
    if request.param == "local":
        yield LocalExecutor(max_parallel=8, workdir=engine.workdir)
        return
    cluster = request.getfixturevalue("ray_cluster")
    from bridge.executors.ray import RayExecutor

    yield RayExecutor(cluster.address, max_parallel=8, workdir=engine.workdir)


class Progress:
    """A listener that keeps the progress it heard and the runs that finished."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.finished: set[str] = set()

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        return None

    async def run_progress(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def run_finished(self, result: RunResult) -> None:
        self.finished.add(result.run_id)


async def test_metrics_come_back_with_their_steps_and_outputs_at_the_end(engine: Engine, executor: Executor) -> None:
    op = engine.operation([{"values": "0.9,0.5", "step_sleep": 0.2}])
    progress = Progress()
    runner = OperationRunner(engine.plan(op), engine.runtime(executor=executor), progress)
    (result,) = (await runner.run()).results
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs == {"loss": 0.5}
    assert [(e.step, e.metrics["loss"]) for e in progress.events] == [(0, 0.9), (1, 0.5)]
    (execution,) = engine.executions()
    assert execution.env["BRIDGE_NODE_ID"]


async def test_metrics_arrive_while_the_run_still_goes(engine: Engine, executor: Executor) -> None:
    gate = engine.root / "gate"
    op = engine.operation([{"values": "0.9", "sleep": 120, "wait_for": str(gate)}], termination={"timeout": 60})
    progress = Progress()
    runner = OperationRunner(engine.plan(op), engine.runtime(executor=executor, grace=1), progress)
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=60, interval=0.05)
    assert not progress.events  # it waits on the gate before its first step
    gate.touch()
    # Its one step, then it sleeps for two minutes: the step comes back long before the run ends.
    await eventually(lambda: len(progress.events) == 1, timeout=30, interval=0.05)
    assert not progress.finished
    runner.stop("seen enough")
    (result,) = (await task).results
    assert result.status is RunStatus.STOPPED


async def test_a_failed_run_says_why_from_its_stderr_and_is_retried(engine: Engine, executor: Executor) -> None:
    op = engine.operation([{"fail_before": 2}, {"exitcode": 4}], termination={"maxRetries": 1})
    retried, failed = (await engine.run(op, runtime=engine.runtime(executor=executor))).results
    assert retried.status is RunStatus.SUCCEEDED and retried.attempt == 2
    assert failed.status is RunStatus.FAILED and failed.attempt == 2
    assert failed.error is not None and "exiting with 4 on purpose" in failed.error.message


async def test_its_stdout_and_stderr_are_kept_in_the_bridges_work_dir(engine: Engine, executor: Executor) -> None:
    op = engine.operation([{"exitcode": 4}])
    (result,) = (await engine.run(op, runtime=engine.runtime(executor=executor))).results
    attempt_dir = RunPaths.for_run(engine.workdir, result.run_id).attempt(1)
    assert "exiting with 4 on purpose" in (attempt_dir / "stderr.log").read_text()


async def test_stop_ends_the_process_itself(engine: Engine, executor: Executor) -> None:
    gate = engine.root / "never-opened"
    op = engine.operation([{"wait_for": str(gate)}])
    runner = OperationRunner(engine.plan(op), engine.runtime(executor=executor, grace=2))
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(engine.executions()) == 1, timeout=60, interval=0.05)
    runner.stop("operator asked")
    (result,) = (await asyncio.wait_for(task, timeout=60)).results
    assert result.status is RunStatus.STOPPED
    (execution,) = engine.executions()
    assert execution.end is None  # it never reached its end: the process was stopped


async def test_a_timeout_ends_the_process_itself(engine: Engine, executor: Executor) -> None:
    op = engine.operation([{"sleep": 120}], termination={"timeout": 3})
    (result,) = (await engine.run(op, runtime=engine.runtime(executor=executor))).results
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "timeout"
    (execution,) = engine.executions()
    assert execution.end is None


async def test_a_median_early_stop_ends_the_worse_run(engine: Engine, executor: Executor) -> None:
    good = "0.9,0.7,0.5,0.4,0.3,0.25,0.2,0.18,0.16,0.15"
    bad = ",".join(["1.5"] * 30)
    rule = {
        "kind": "metric_early_stopping",
        "metric": "loss",
        "optimization": "minimize",
        "policy": {"kind": "median", "evaluationInterval": 1, "minInterval": 2, "minSamples": 2},
    }
    op = engine.operation(
        [{"values": good}, {"values": good.replace("0.1", "0.11")}, {"values": bad, "step_sleep": 0.3}],
        matrix={"concurrency": 1, "earlyStopping": [rule]},
    )
    outcome = await engine.run(op, runtime=engine.runtime(executor=executor))
    first, second, pruned = outcome.results
    assert first.status is second.status is RunStatus.SUCCEEDED
    assert pruned.status is RunStatus.STOPPED
    assert pruned.error is not None and pruned.error.type == "early_stopped" and "median" in pruned.error.message
    (bad_run,) = engine.executions("r2")
    assert bad_run.end is None  # stopped before its last step
