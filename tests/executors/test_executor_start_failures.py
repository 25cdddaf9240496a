"""A command that cannot be executed fails its run with `start_failed` and exec's own reason, and a command
that can is found as exec finds it (on the run's PATH, or relative to the run's working directory), whether
setpriv starts runs or not (setpriv itself would only exit 126 or 127)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.executors.base import MetricRecord, RunExit
from bridge.executors.local import LocalExecutor, ProcessRequest

Which = Callable[[str], str | None]


def _no_setpriv(_name: str) -> None:
    return None


WHICH = [
    pytest.param(
        shutil.which,
        id="setpriv",
        marks=pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not on PATH"),
    ),
    pytest.param(_no_setpriv, id="preexec_fn"),
]


def _ignore(_record: MetricRecord) -> None:
    return None


async def _run(root: Path, which: Which, argv: list[str], cwd: Path | None = None) -> RunExit:
    request = ProcessRequest(
        run_id="r",
        attempt=1,
        argv=argv,
        env={"BRIDGE_RUN_ID": "r"},
        cwd=cwd or root,
        attempt_dir=root / "runs" / "r" / "attempts" / "1",
        outputs_dir=root / "runs" / "r" / "outputs",
    )
    handle = await LocalExecutor(which=which).spawn(request, _ignore)
    return await handle.wait()


@pytest.mark.parametrize("which", WHICH)
async def test_a_program_not_on_path_is_a_start_failure(tmp_path: Path, which: Which) -> None:
    ended = await _run(tmp_path, which, ["no-such-program-4f1c", "--flag"])
    assert ended.exit_code is None
    assert ended.start_error == "could not start `no-such-program-4f1c`: No such file or directory"


@pytest.mark.parametrize("which", WHICH)
async def test_a_missing_or_not_executable_path_is_a_start_failure(tmp_path: Path, which: Which) -> None:
    (tmp_path / "notes.txt").write_text("not a program\n")
    missing = await _run(tmp_path, which, [str(tmp_path / "missing.sh")])
    assert missing.start_error == f"could not start `{tmp_path / 'missing.sh'}`: No such file or directory"
    not_executable = await _run(tmp_path, which, ["./notes.txt"])
    assert not_executable.start_error == "could not start `./notes.txt`: Permission denied"
    a_folder = await _run(tmp_path, which, [str(tmp_path)])
    assert a_folder.start_error == f"could not start `{tmp_path}`: Permission denied"


@pytest.mark.parametrize("which", WHICH)
async def test_a_relative_program_is_found_from_the_runs_working_directory(tmp_path: Path, which: Which) -> None:
    workdir = tmp_path / "component"
    (workdir / "bin").mkdir(parents=True)
    script = workdir / "bin" / "train.sh"
    script.write_text("#!/bin/sh\necho trained\n")
    script.chmod(0o755)
    ended = await _run(tmp_path, which, ["bin/train.sh"], cwd=workdir)
    assert (ended.exit_code, ended.start_error) == (0, None)
    assert (tmp_path / "runs" / "r" / "attempts" / "1" / "stdout.log").read_text() == "trained\n"


@pytest.mark.parametrize("which", WHICH)
async def test_python3_is_the_bridges_own_interpreter(tmp_path: Path, which: Which) -> None:
    ended = await _run(tmp_path, which, ["python3", "-c", "import sys; print(sys.executable)"])
    assert ended.exit_code == 0
    printed = (tmp_path / "runs" / "r" / "attempts" / "1" / "stdout.log").read_text().strip()
    assert Path(printed).parent == Path(sys.executable).parent
