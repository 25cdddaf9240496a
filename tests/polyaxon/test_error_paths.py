"""Errors point where the user wrote the thing (issue 11, item 6)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_support import bridge
from tests.polyaxon.cli_files import write
from tests.polyaxon.support import component

INPUTS = [{"name": "epochs", "type": "int"}]


def test_a_file_without_matrix_reports_missing_params_at_params(tmp_path: Path) -> None:
    path = write(tmp_path, {"kind": "operation", "component": component(INPUTS, args=["{{ epochs }}"])})

    result = bridge("check", "-f", str(path), cwd=tmp_path)

    assert result.returncode == 2
    assert "params.epochs: Input `epochs` is required" in result.stderr
    assert "matrix.values" not in result.stderr


def test_a_component_file_reports_paths_as_written(tmp_path: Path) -> None:
    missing = write(tmp_path, component(INPUTS, args=["{{ epochs }}"]), "missing.yaml")
    unknown = write(tmp_path, component(args=["{{ nope }}"]), "unknown.yaml")

    missing_result = bridge("check", "-f", str(missing), cwd=tmp_path)
    unknown_result = bridge("check", "-f", str(unknown), cwd=tmp_path)

    assert "params.epochs: Input `epochs` is required" in missing_result.stderr
    assert "The file is a component" in missing_result.stderr
    assert "matrix.values" not in missing_result.stderr
    assert f"{unknown}: run.container.args[0]: unknown name" in unknown_result.stderr
