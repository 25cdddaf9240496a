"""Every `globals.*` name Polyaxon's compiler defines for a run renders (issue 11, item 4)."""

from __future__ import annotations

from pathlib import Path

from bridge.polyaxon import RunGlobals
from tests.cli.cli_support import bridge
from tests.polyaxon.cli_files import recording_component, write
from tests.polyaxon.support import operation

# polyaxon 2.18.0, _compiler/contexts/contexts.py resolve_globals_contexts (without an artifacts store).
POLYAXON_GLOBALS = [
    "owner_name",
    "project_name",
    "project_unique_name",
    "project_uuid",
    "username",
    "user_email",
    "run_info",
    "name",
    "uuid",
    "namespace",
    "iteration",
    "context_path",
    "artifacts_path",
    "created_at",
    "compiled_at",
    "schedule_at",
    "started_at",
    "finished_at",
    "duration",
    "cloning_kind",
    "original_uuid",
    "is_independent",
    "store_path",
    "run_relative_outputs_path",
    "run_artifacts_path",
    "run_outputs_path",
]


def test_every_polyaxon_global_is_defined() -> None:
    context = RunGlobals(run_uuid="u1", run_name="r", artifacts_path="/w/u1", run_outputs_path="/w/u1/o").as_context()

    assert set(POLYAXON_GLOBALS) <= set(context)
    assert context["run_info"] == f"{context['owner_name']}.default.runs.u1"
    assert context["run_relative_outputs_path"] == "u1/outputs"


def test_a_run_renders_the_globals(tmp_path: Path) -> None:
    args = [f"{name}={{{{ globals.{name} }}}}" for name in POLYAXON_GLOBALS]
    path = write(tmp_path, operation([{}], component=recording_component([], *args)))

    result = bridge("run", "-f", str(path), "--workdir", str(tmp_path / ".bridge"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    seen = dict(line.split("=", 1) for line in (tmp_path / "argv.txt").read_text().splitlines())
    assert seen["is_independent"] == "True"
    assert seen["finished_at"] == "None"
    assert seen["run_info"].endswith(f".runs.{seen['uuid']}")
    assert seen["created_at"].startswith("20")
