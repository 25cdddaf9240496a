"""`bridge run` names the best run and sorts its table by the objective (issue 11, item 11): `--objective`, else
the metric the template's metric early stopping watches."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.cli.cli_support import bridge, write_operation

_LOSSES: list[dict[str, Any]] = [{"values": "0.5"}, {"values": "0.125"}, {"exitcode": 3}, {"values": "0.25"}]


def _row_order(table: str) -> list[int]:
    """The run numbers of a results table, top to bottom."""
    return [int(m.group(1)) for m in re.finditer(r"^│ (\d+)\s+│", table, flags=re.MULTILINE)]


def test_objective_sorts_the_table_and_names_the_best_run(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES, tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--objective", "loss:min", cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # run 2 failed
    assert _row_order(out.stdout) == [1, 3, 0, 2]  # ranked runs best first, then the failed one
    assert re.search(r"^best run: #1 loss=0\.125 \(.*name=r1.*\)", out.stderr, flags=re.MULTILINE), out.stderr


def test_maximising_reverses_the_order(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES, tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--objective", "loss:max", cwd=tmp_path)
    assert _row_order(out.stdout) == [0, 3, 1, 2]
    assert "best run: #0 loss=0.5" in out.stderr


def test_the_templates_metric_early_stopping_is_the_default_objective(tmp_path: Path) -> None:
    rule = {"kind": "metric_early_stopping", "metric": "loss", "value": 0.0, "optimization": "minimize"}
    f = write_operation(tmp_path, _LOSSES, tmp_path / "rec", matrix={"earlyStopping": [rule]})
    out = bridge("run", "-f", str(f), cwd=tmp_path)
    assert _row_order(out.stdout) == [1, 3, 0, 2]
    assert "best run: #1 loss=0.125" in out.stderr and "from metric early stopping" in out.stderr


def test_json_lines_keep_mapping_order_and_the_best_run_goes_to_stderr(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES, tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--objective", "loss:min", "--output", "jsonl", cwd=tmp_path)
    assert [json.loads(line)["index"] for line in out.stdout.splitlines()] == [0, 1, 2, 3]
    assert "best run: #1 loss=0.125" in out.stderr


def test_no_objective_no_best_run_line(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES[:2], tmp_path / "rec")
    out = bridge("run", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _row_order(out.stdout) == [0, 1]
    assert "best run" not in out.stderr


def test_a_bad_objective_exits_2_before_anything_runs(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES[:1], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--objective", "loss:lowest", cwd=tmp_path)
    assert out.returncode == 2
    assert "--objective takes METRIC:min or METRIC:max" in out.stderr
    assert not (tmp_path / "rec").exists()


def test_an_objective_no_output_declares_is_warned_about(tmp_path: Path) -> None:
    f = write_operation(tmp_path, _LOSSES[:1], tmp_path / "rec")
    out = bridge("run", "-f", str(f), "--objective", "accuracy:max", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "warning: --objective accuracy:max: the component has no output `accuracy`" in out.stderr
    assert "best run: none" in out.stderr
