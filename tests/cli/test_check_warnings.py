"""Keys Polyaxon accepts that do nothing here are accepted, and `bridge check`/`run` name each one on stderr."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_support import bridge

OPERATION = """
version: 1.1
kind: operation
matrix: {kind: mapping, values: [{n: 1}]}
component:
  kind: component
  inputs: [{name: n, type: int}]
  run:
    kind: job
    environment: {nodeSelector: {gpu: "true"}}
    container: {image: x, command: [echo, "{{ n }}"], resources: {limits: {cpu: 1}}}
"""


def test_check_names_the_keys_that_do_nothing_here(tmp_path: Path) -> None:
    (tmp_path / "op.yaml").write_text(OPERATION)
    done = bridge("check", "-f", "op.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: op.yaml: ")]
    assert any("component.run.environment" in line for line in warnings)
    assert any("component.run.container.resources" in line for line in warnings)


def test_run_prints_the_same_warnings_and_runs(tmp_path: Path) -> None:
    (tmp_path / "op.yaml").write_text(OPERATION)
    done = bridge("run", "-f", "op.yaml", "--output", "jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: op.yaml: component.run.environment" in done.stderr
    assert done.stdout.count('"status":"succeeded"') == 1
