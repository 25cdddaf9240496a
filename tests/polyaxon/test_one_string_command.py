"""A one-string `args` or `command` is one argv item, as Polyaxon passes it (issue 11, item 1)."""

from __future__ import annotations

from pathlib import Path

from bridge.polyaxon import expand_runs, render_run
from tests.cli.cli_support import bridge
from tests.polyaxon.cli_files import write
from tests.polyaxon.support import component, operation, parse
from tests.polyaxon.test_templating import GLOBALS


def test_the_shell_idiom_runs_the_whole_line(tmp_path: Path) -> None:
    # Polyaxon's most common idiom: before, the bridge split the line and the shell ran only `echo`.
    doc = operation(
        [{"lr": 0.1}],
        component=component(
            [{"name": "lr", "type": "float"}],
            command=["/bin/sh", "-c"],
            args="echo {{ lr }} > out.txt && echo done >> out.txt",
        ),
    )
    path = write(tmp_path, doc)

    result = bridge("run", "-f", str(path), "--workdir", str(tmp_path / ".bridge"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.txt").read_text() == "0.1\ndone\n"


def test_a_string_command_stays_one_program_name_and_is_warned_about() -> None:
    op = parse(
        operation([{"lr": 0.1}], component=component([{"name": "lr", "type": "float"}], command="echo {{ lr }}"))
    )
    assert op.component is not None

    (params,) = expand_runs(op)

    assert render_run(op.component, params, GLOBALS).argv == ["echo 0.1"]
    assert [w.path for w in op.warnings] == ["component.run.container.command"]
