"""`bridge run`'s log lines: on stderr, at the level asked (warning by default), never mixed into the results on
stdout, although structlog is configured only once a line is worth logging."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.cli.cli_support import bridge


def _operation(root: Path, code: str, **fields: object) -> Path:
    component = {
        "kind": "component",
        "inputs": [{"name": "i", "type": "int"}],
        "run": {"kind": "job", "container": {"image": "python", "command": [sys.executable, "-c", code]}},
    }
    doc = {
        "version": 1.1,
        "kind": "operation",
        "name": "logs",
        "component": component,
        "matrix": {"kind": "mapping", "values": [{"i": 0}]},
        **fields,
    }
    path = root / "mapping.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _results(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_retried_run_is_logged_on_stderr_and_stdout_keeps_only_results(tmp_path: Path) -> None:
    f = _operation(tmp_path, "raise SystemExit(3)", termination={"maxRetries": 1})
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 1
    [result] = _results(out.stdout)
    assert (result["status"], result["attempt"]) == ("failed", 2)
    retried = [line for line in out.stderr.splitlines() if "run_retrying" in line]
    assert len(retried) == 1 and "warning" in retried[0] and str(result["run_id"]) in retried[0]
    assert "run_process_started" not in out.stderr  # a debug line, below the default level


def test_debug_level_logs_each_process_start_on_stderr(tmp_path: Path) -> None:
    f = _operation(tmp_path, "pass")
    out = bridge("--log-level", "debug", "run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["status"] for r in _results(out.stdout)] == ["succeeded"]
    assert any("run_process_started" in line and "debug" in line for line in out.stderr.splitlines())


def test_json_log_lines_when_asked(tmp_path: Path) -> None:
    f = _operation(tmp_path, "raise SystemExit(3)", termination={"maxRetries": 1})
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path, env={"BRIDGE_LOG_FORMAT": "json"})
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert [(e["event"], e["level"]) for e in events] == [("run_retrying", "warning")]
