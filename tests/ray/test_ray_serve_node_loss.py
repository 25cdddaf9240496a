"""`bridge serve` on the Ray executor, a study over every partition, and a worker node's raylet killed with -9
mid-study: every suggestion still gets exactly one final result (read_committed), none lost, none twice; the runs
that were on the dead node run again (attempt + 1), and nothing else does."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study, stop_all
from tests.polling import eventually
from tests.ray_cluster import RayCluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20261129


def _on_ray(cluster: Cluster, address: str) -> None:
    """Point the cluster's config (read by every replica it starts) at the Ray executor."""
    data = json.loads(cluster.config.read_text())
    data["executor"] = {**data.get("executor", {}), "kind": "ray", "address": address}
    cluster.config.write_text(json.dumps(data))


def _records(record: Path) -> list[dict[str, Any]]:
    """The job's own records of its executions."""
    out = []
    for path in record.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):  # written atomically; a vanished file is skipped
            out.append(json.loads(path.read_text()))
    return out


def _running_on(record: Path, names: dict[str, str], node: str) -> list[str]:
    """The suggestions whose execution is going on `node` now."""
    return [
        d["name"]
        for d in _records(record)
        if d.get("end") is None and names.get(d["env"].get("BRIDGE_NODE_ID", "")) == node
    ]


async def test_a_node_killed_mid_study_loses_no_result_and_doubles_none(
    kafka_bootstrap: str, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=3, concurrency=3)
    _on_ray(cluster, ray_cluster.address)
    replica = cluster.replica("a")
    study = Study(
        kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED, total=24, publish_over_s=5, sleep=(3.0, 5.0)
    )
    checker = Checker(cluster, study, "ray_node_loss")
    faults: list[Fault] = []
    try:
        replica.start()
        await replica.wait_ready(timeout=90)
        study.start()
        names = ray_cluster.node_ids()
        await eventually(lambda: bool(_running_on(cluster.record, names, "n2")), timeout=120, interval=0.05)
        ray_cluster.kill_node(2)
        # The node's runs were in flight on it, whichever replica followed them: any may run again.
        faults.append(Fault(time.time(), "kill -9 of node 2's raylet"))
        await study.finished()
        missing = await checker.wait_for_results(timeout=180)
        print(f"{len(missing)} suggestions without a result")
        problems = await stop_all(cluster.replicas)
    finally:
        study.cancel()
        cluster.kill_all()
        ray_cluster.restart_node(2)
    spread = Counter(names.get(e["env"].get("BRIDGE_NODE_ID", ""), "?") for e in _records(cluster.record))
    print(f"executions by node: {dict(sorted(spread.items()))}")  # the closing note quotes this line
    counts = await checker.check(faults, extra_problems=problems)
    assert counts.reexecutions >= 1  # the dead node had runs in flight, and they ran again elsewhere
