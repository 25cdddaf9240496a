"""A param that is valid but surely not meant (issue 11, item 9) is named on stderr; the exit code is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.cli_support import bridge, write_operation


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_a_misspelt_param_in_the_mapping_is_named_with_what_was_meant(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"valeus": "0.3"}, {"values": "0.4"}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # Polyaxon accepts it as a context param: so does the bridge
    (warning,) = _warnings(out.stderr)
    assert "matrix.values[0].valeus" in warning and "did you mean `values`?" in warning
    # ... and it is true: the run did not get the value it was meant to get.
    assert [json.loads(line)["outputs"].get("loss") for line in out.stdout.splitlines()][1] == 0.4


def test_check_warns_the_same_way_once_per_misspelt_name(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"slep": 1}, {"slep": 2}, {}], tmp_path / "rec", params={"exitcod": {"value": 1}})
    out = bridge("check", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    warnings = _warnings(out.stderr)
    assert len(warnings) == 2, warnings
    assert "params.exitcod" in warnings[0] and "did you mean `exitcode`?" in warnings[0]
    assert "matrix.values[0].slep (and 1 more run(s))" in warnings[1] and "did you mean `sleep`?" in warnings[1]


def test_a_dash_p_that_no_input_declares_is_named(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "-P", "valus=0.5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (warning,) = _warnings(out.stderr)
    assert "-P valus=0.5: no input or output is named `valus`; did you mean `values`?" in warning


def test_a_dash_p_the_mapping_overrides_is_named(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.1"}, {}, {"values": "0.3"}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "-P", "values=0.9", "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (warning,) = _warnings(out.stderr)
    assert "-P values=0.9: matrix.values sets `values` in 2 of 3 runs" in warning
    assert [json.loads(line)["outputs"]["loss"] for line in out.stdout.splitlines()] == [0.1, 0.9, 0.3]


def test_declared_params_and_context_only_ones_give_no_warning(tmp_path: Path) -> None:
    params = {"tag": {"value": "x", "contextOnly": True}, "sleep": {"value": 0}}
    f = write_operation(tmp_path, [{"values": "0.1"}], tmp_path / "rec", params=params)
    out = bridge("check", "-f", str(f), "-P", "exitcode=0", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _warnings(out.stderr) == []
