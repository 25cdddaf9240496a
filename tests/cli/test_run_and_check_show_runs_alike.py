"""`bridge run`'s table shows each run's params as `bridge check` does, and its best-run line rounds as the table
does (issue 19, the submitting side, item 9)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.cli_support import bridge, write_operation

_WIDE = {"COLUMNS": "400"}  # one line per row


def _cells(table: str, index: int) -> list[str]:
    """The cells of run `index`'s row of a table."""
    (row,) = [line for line in table.splitlines() if re.match(rf"^│ {index}\s+│", line)]
    return [cell.strip() for cell in row.strip("│").split("│")]


def test_the_run_table_shows_the_params_check_shows(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.123456"}, {"values": "0.5", "sleep": 0.01}], tmp_path / "rec")
    checked = bridge("check", "-f", str(f), cwd=tmp_path, env=_WIDE)
    ran = bridge("run", "-f", str(f), "--objective", "loss:min", cwd=tmp_path, env=_WIDE)
    assert checked.returncode == 0 and ran.returncode == 0, checked.stderr + ran.stderr
    for index in (0, 1):
        params = _cells(checked.stdout, index)[1]
        assert "exitcode=0" in params  # a default the run took, not in the mapping
        assert _cells(ran.stdout, index)[2] == params


def test_the_best_run_line_rounds_as_the_table(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"values": "0.123456"}, {"values": "0.5"}], tmp_path / "rec")
    ran = bridge("run", "-f", str(f), "--objective", "loss:min", cwd=tmp_path, env=_WIDE)
    assert ran.returncode == 0, ran.stderr
    outputs = _cells(ran.stdout, 0)[3]
    assert outputs == "loss=0.1235"
    assert re.search(r"^best run: #0 loss=0\.1235 \(", ran.stderr, flags=re.MULTILINE), ran.stderr
