"""Defaults that are templates are rendered, in params and argv, as Polyaxon does (issue 11, item 3)."""

from __future__ import annotations

from pathlib import Path

from bridge.polyaxon import expand_runs, render_run
from tests.cli.cli_support import bridge
from tests.polyaxon.cli_files import recording_component, write
from tests.polyaxon.support import operation, parse
from tests.polyaxon.test_templating import GLOBALS

INPUTS = [{"name": "image", "type": "str", "value": "base", "isOptional": True}]
OUTPUTS = [{"name": "tagged", "type": "str", "value": "{{ image }}:v1", "isOptional": True, "toEnv": "TAGGED"}]


def test_an_output_default_template_renders_in_argv_params_and_env() -> None:
    comp = recording_component(INPUTS, "{{ tagged }}", "{{ params.tagged.value }}", "{{ params.tagged.as_arg }}")
    op = parse(operation([{"image": "img"}], component={**comp, "outputs": OUTPUTS}))
    assert op.component is not None

    (params,) = expand_runs(op)
    run = render_run(op.component, params, GLOBALS)

    assert run.argv[3:] == ["img:v1", "img:v1", "--tagged=img:v1"]
    assert run.env["TAGGED"] == "img:v1"


def test_bridge_run_passes_the_rendered_default(tmp_path: Path) -> None:
    comp = {**recording_component(INPUTS, "{{ tagged }}"), "outputs": OUTPUTS}
    path = write(tmp_path, operation([{}], component=comp))

    result = bridge("run", "-f", str(path), "--workdir", str(tmp_path / ".bridge"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "argv.txt").read_text() == "base:v1"
