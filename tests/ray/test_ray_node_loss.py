"""A Ray node dying mid-study: its runs fail as lost and run again elsewhere (`attempt` 2); every run still
ends with exactly one result, none lost, none twice."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.scheduler import OperationRunner
from bridge.executors.ray import RayExecutor
from tests.engine_support import Engine
from tests.polling import eventually
from tests.ray_cluster import RayCluster


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_killing_a_worker_nodes_raylet_retries_its_runs_and_loses_none(
    engine: Engine, ray_cluster: RayCluster
) -> None:
    runs = 9
    op = engine.operation([{"sleep": 4.0} for _ in range(runs)], matrix={"concurrency": 3})
    executor = RayExecutor(ray_cluster.address, max_parallel=3, workdir=engine.workdir)
    names = ray_cluster.node_ids()
    runner = OperationRunner(engine.plan(op), engine.runtime(executor=executor))
    task = asyncio.create_task(runner.run())
    try:
        # A run going on node 2: then node 2 goes, with whatever runs on it.
        def on_n2_now() -> set[str]:
            return {e.name for e in engine.executions() if names[e.env["BRIDGE_NODE_ID"]] == "n2" and e.end is None}

        await eventually(lambda: bool(on_n2_now()), timeout=120, interval=0.05)
        ray_cluster.kill_node(2)
        on_n2 = on_n2_now()
        outcome = await asyncio.wait_for(task, timeout=240)
    finally:
        ray_cluster.restart_node(2)
    results = outcome.results
    assert Counter(r.run_id for r in results) == Counter({r.run_id: 1 for r in results})  # one result each
    assert len(results) == runs
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * runs, [r.error for r in results]
    retried = {f"r{r.index}" for r in results if r.attempt == 2}
    assert on_n2 <= retried  # the runs on the dead node ran again
    assert all(r.attempt == 1 for r in results if f"r{r.index}" not in retried)
    finished = Counter(e.name for e in engine.executions() if e.end is not None)
    assert finished == Counter({f"r{i}": 1 for i in range(runs)})  # each run ran to its end exactly once
