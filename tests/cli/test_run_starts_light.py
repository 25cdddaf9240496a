"""`bridge run` imports what running a polyaxonfile on this machine needs, and nothing of the Kafka service nor of
logging when nothing is logged: its start-up is paid again by every `bridge run` a script or an optimizer makes
(issue 9, P3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

# The service's settings (pydantic-settings), its messages and Kafka client, its metrics; structlog, configured
# once a line is worth logging; rich, which draws a live bar on a terminal and tables (and which structlog's console
# renderer imports). Each of them but aiokafka and prometheus_client was imported by `bridge run` before.
NOT_NEEDED = (
    "pydantic_settings",
    "bridge.config.settings",
    "bridge.contract.messages",
    "bridge.kafka",
    "aiokafka",
    "prometheus_client",
    "structlog",
    "rich",
)

PROBE = """
import json, sys
from bridge.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "imported": sorted(m for m in {modules!r} if m in sys.modules)}}))
"""


def _operation(root: Path) -> Path:
    component = {
        "kind": "component",
        "inputs": [{"name": "i", "type": "int"}],
        "run": {"kind": "job", "container": {"image": "python", "command": [sys.executable, "-c", "pass"]}},
    }
    doc = {
        "version": 1.1,
        "kind": "operation",
        "name": "light",
        "component": component,
        "matrix": {"kind": "mapping", "values": [{"i": 0}, {"i": 1}]},
    }
    path = root / "mapping.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_bridge_run_into_a_pipe_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    polyaxonfile = _operation(tmp_path)
    args = ["run", "-f", str(polyaxonfile), "--workdir", str(tmp_path / "work"), "--output", "jsonl"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=NOT_NEEDED), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    *results, probe = out.stdout.strip().splitlines()
    report = json.loads(probe)
    # The runs did run, so every module their start, wait and report needed was imported on the way.
    assert report["code"] == 0, out.stderr
    assert [json.loads(line)["status"] for line in results] == ["succeeded", "succeeded"]
    assert report["imported"] == [], f"`bridge run` imported {report['imported']}"
