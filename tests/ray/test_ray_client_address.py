"""`bridge run --executor ray --address ray://host:port` reaches the cluster through Ray Client (the `ray` extra
installs it) and runs there like with a host:port address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cli_support import bridge, write_operation
from tests.ray_cluster import RayCluster


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_ray_client_address_runs_on_the_cluster(tmp_path: Path, ray_cluster: RayCluster) -> None:
    record = tmp_path / "rec"
    f = write_operation(tmp_path, [{"values": "0.3"}, {"values": "0.2"}], record)
    out = bridge(
        "run", "-f", str(f), "--output", "jsonl", "--executor", "ray", "--address", ray_cluster.client_address,
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["status"], r["outputs"]) for r in results] == [
        ("succeeded", {"loss": 0.3}),
        ("succeeded", {"loss": 0.2}),
    ]
    nodes = set(ray_cluster.node_ids())
    for path in record.glob("*.json"):
        assert json.loads(path.read_text())["env"]["BRIDGE_NODE_ID"] in nodes
