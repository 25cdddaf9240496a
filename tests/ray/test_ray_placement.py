"""Runs on the Ray executor go where Ray has room and where their resources say: over all three nodes of the
session's cluster, and only to the node whose custom resource a run asks for (`ray.io/<name>`)."""

from __future__ import annotations

import pytest

from bridge.contract.results import RunStatus
from bridge.executors.ray import RayExecutor
from tests.engine_support import Engine, job_component
from tests.ray_cluster import RayCluster


async def test_runs_land_on_all_three_nodes(engine: Engine, ray_cluster: RayCluster) -> None:
    # Six runs of 2 s at once on three one-CPU nodes: never more than three run at a time, one per node.
    op = engine.operation([{"sleep": 2.0} for _ in range(6)], matrix={"concurrency": 6})
    executor = RayExecutor(ray_cluster.address, max_parallel=6, workdir=engine.workdir)
    outcome = await engine.run(op, runtime=engine.runtime(executor=executor))
    assert [r.status for r in outcome.results] == [RunStatus.SUCCEEDED] * 6
    names = ray_cluster.node_ids()
    landed = sorted(names[e.env["BRIDGE_NODE_ID"]] for e in engine.executions())
    assert set(landed) == {"n0", "n1", "n2"}, landed


@pytest.mark.parametrize("node", ["n1", "n2"])
async def test_a_run_asking_for_a_nodes_resource_lands_on_that_node(
    engine: Engine, ray_cluster: RayCluster, node: str
) -> None:
    component = job_component()
    component["run"]["container"]["resources"] = {"requests": {"cpu": "500m", f"ray.io/{node}": 1}}
    op = engine.operation([{"sleep": 0.2} for _ in range(3)], component=component, matrix={"concurrency": 3})
    executor = RayExecutor(ray_cluster.address, max_parallel=3, workdir=engine.workdir)
    outcome = await engine.run(op, runtime=engine.runtime(executor=executor))
    assert [r.status for r in outcome.results] == [RunStatus.SUCCEEDED] * 3
    names = ray_cluster.node_ids()
    assert {names[e.env["BRIDGE_NODE_ID"]] for e in engine.executions()} == {node}
