"""`bridge check` never ends "valid" while it warns without saying so, `--strict` makes a warning invalid, and with
`strictParams` the misspelt param is an error with the same did-you-mean (issue 19, the submitting side, item 2)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_support import bridge, write_operation


def test_check_ends_valid_with_its_warnings_counted(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"slep": 1}, {}], tmp_path / "rec")
    out = bridge("check", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[-1] == f"{f}: valid with 1 warning(s) above, 2 run(s)"


def test_check_strict_exits_2_on_a_warning(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"slep": 1}, {}], tmp_path / "rec")
    out = bridge("check", "--strict", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "did you mean `sleep`?" in out.stderr
    assert out.stderr.splitlines()[-1] == f"{f}: invalid with --strict: 1 warning(s) above"


def test_check_strict_passes_a_file_without_warnings(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"sleep": 1}], tmp_path / "rec")
    out = bridge("check", "--strict", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[-1] == f"{f}: valid, 1 run(s)"


def test_strict_params_refuses_a_misspelt_param_with_what_was_meant(tmp_path: Path) -> None:
    f = write_operation(tmp_path, [{"slep": 1}], tmp_path / "rec", strictParams=True)
    out = bridge("check", "-f", str(f), cwd=tmp_path)
    assert out.returncode == 2
    assert "matrix.values[0].slep" in out.stderr and "undeclared param `slep`; did you mean `sleep`?" in out.stderr
