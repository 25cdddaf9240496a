"""`bridge run` is the user's own file on the user's own machine: its runs see the user's environment, but never
the bridge's `BRIDGE_*` settings (a Kafka password exported for `serve` in the same shell)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.cli_support import bridge

SHOW_ENV = (
    "import os; from bridge.tracking import log_outputs; "
    "log_outputs(data=os.environ.get('MY_DATA_DIR', ''), secret=os.environ.get('BRIDGE_KAFKA__SASL_PASSWORD', ''),"
    " node=os.environ.get('BRIDGE_NODE_ID', ''))"
)


def test_runs_see_the_users_environment_but_not_the_bridges_settings(tmp_path: Path) -> None:
    doc = {
        "version": 1.1,
        "kind": "operation",
        "matrix": {"kind": "mapping", "values": [{"n": 1}]},
        "component": {
            "kind": "component",
            "inputs": [{"name": "n", "type": "int"}],
            "run": {"kind": "job", "container": {"image": "local", "command": ["python3", "-c", SHOW_ENV]}},
        },
    }
    (tmp_path / "op.yaml").write_text(yaml.safe_dump(doc))
    done = bridge(
        "run",
        "-f",
        "op.yaml",
        "--output",
        "jsonl",
        cwd=tmp_path,
        env={"MY_DATA_DIR": "/data/shards", "BRIDGE_KAFKA__SASL_PASSWORD": "hunter2"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert result["outputs"]["data"] == "/data/shards"
    assert result["outputs"]["secret"] == ""
    assert result["outputs"]["node"] != ""
    assert "hunter2" not in done.stdout + done.stderr
