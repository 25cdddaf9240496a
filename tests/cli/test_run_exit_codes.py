"""`bridge run` as CONTRACT.md section 2 says: results on stdout, progress on stderr, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.contract.results import RunResult
from tests.cli.cli_support import bridge, write_operation


def test_all_runs_succeed_exit_0_with_a_table(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.5,0.25"}, {"values": "0.4"}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stdout and "loss=0.25" in out.stdout
    assert "2 succeeded" in out.stderr


def test_jsonl_output_is_one_result_message_per_run(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.5"}, {"values": "0.4"}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = [RunResult.model_validate(json.loads(line)) for line in out.stdout.splitlines()]
    assert [r.outputs["loss"] for r in results] == [0.5, 0.4]
    assert all(json.loads(line)["schema"] == "bridge.result/v1" for line in out.stdout.splitlines())


def test_a_failed_run_exits_1(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"exitcode": 3}, {}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 1
    assert "failed" in out.stdout


def test_an_invalid_file_exits_2_names_the_field_and_runs_nothing(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{}, {"sleep": "abc"}], tmp_path / "rec")
    out = bridge("run", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 2
    assert "matrix.values[1].sleep" in out.stderr
    assert str(f) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "rec").exists()


def test_param_override_from_the_command_line(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"name": "a"}], tmp_path / "rec", params={"values": "0.9"})
    out = bridge("run", "-f", str(f), "-P", "values=0.125", "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"]["loss"] == 0.125


def test_check_prints_the_runs_and_exits_0(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"sleep": "1"}, {"sleep": 2}], tmp_path / "rec")
    out = bridge("check", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sleep=1" in out.stdout and "sleep=2" in out.stdout
    assert "2 run(s)" in out.stderr


def test_check_of_an_invalid_file_exits_2(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"bogus_key": 1}], tmp_path / "rec", strictParams=True)
    out = bridge("check", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 2
    assert "matrix.values[0].bogus_key" in out.stderr
