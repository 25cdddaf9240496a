"""The context a run's templates see: each param by name, `params.<name>.*`, `params.as_args` and `globals.*`.

It is built as Polyaxon builds it (its ParamSpec and globals), so a template written for Polyaxon renders the same
here; templating.py renders the container in it.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import jinja2

from bridge.errors import Problem
from bridge.polyaxon.inputs import V1IO
from bridge.polyaxon.sandbox import render_template
from bridge.polyaxon.schema import V1Component
from bridge.polyaxon.types import compact_json


@functools.cache  # every run's globals name it, and asking the password database each time costs a file read
def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return "bridge"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunGlobals:
    """What a run's templates see as `globals.*`: every name Polyaxon's compiler defines.

    Polyaxon's values come from its server (owner, project, timestamps...); here the owner is the local user, the
    project the operation (or study), and times are the run's own. Names Polyaxon leaves unset before a run
    starts (`finished_at`, `duration`, `namespace`...) render as it renders them: `None`.
    """

    run_uuid: str
    run_name: str
    artifacts_path: str
    run_outputs_path: str
    iteration: int | None = None
    project_name: str = "default"
    owner_name: str = field(default_factory=_local_user)
    created_at: datetime = field(default_factory=_now)
    context_path: str | None = None  # the folder above the run's artifacts (Polyaxon: /plx-context)

    def as_context(self) -> dict[str, Any]:
        """Polyaxon's names for these values (`uuid` and `run_uuid`, `name`, `run_artifacts_path`, ...)."""
        context_path = self.context_path or str(PurePath(self.artifacts_path).parent)
        return {
            "owner_name": self.owner_name,
            "project_name": self.project_name,
            "project_unique_name": f"{self.owner_name}.{self.project_name}",
            "project_uuid": self.project_name,  # Polyaxon's own fallback when a project has no uuid
            "username": self.owner_name,
            "user_email": None,
            "run_info": f"{self.owner_name}.{self.project_name}.runs.{self.run_uuid}",
            "uuid": self.run_uuid,
            "run_uuid": self.run_uuid,
            "name": self.run_name,
            "run_name": self.run_name,
            "namespace": None,
            "iteration": self.iteration,
            "context_path": context_path,
            "artifacts_path": self.artifacts_path,
            "run_artifacts_path": self.artifacts_path,
            "run_outputs_path": self.run_outputs_path,
            "run_relative_outputs_path": f"{self.run_uuid}/outputs",
            "store_path": "",
            "created_at": self.created_at,
            "compiled_at": self.created_at,
            "schedule_at": None,
            "started_at": None,
            "finished_at": None,
            "duration": None,
            "cloning_kind": None,
            "original_uuid": None,
            "is_independent": True,
        }


# What a template can raise while rendering: Jinja's errors (the budget's included), and what Python raises for
# a bad value (`1 // 0`, `{}.x.y`) or a template that calls itself without end.
RENDER_ERRORS = (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, RecursionError)


def build_context(
    component: V1Component,
    params: Mapping[str, Any],
    globals_: RunGlobals,
    problems: list[Problem] | None = None,
) -> dict[str, Any]:
    """The templating context of one run, as Polyaxon builds it (an argFormat that fails adds a problem)."""
    declared = {io.name: io for io in component.io}
    context: dict[str, Any] = {}
    described: dict[str, Any] = {}
    as_args: list[str] = []
    names = list(params) + [n for n in declared if n not in params]
    for name in names:
        io = declared.get(name)
        value = params.get(name, io.value if io else None)
        spec = ParamView(name, value, io)
        try:
            as_arg = spec.as_arg()
        except RENDER_ERRORS as exc:
            if problems is not None:
                problems.append(Problem(io_path(component, name, "argFormat"), f"cannot render argFormat: {exc}"))
            as_arg = ""
        context[name] = spec.display
        described[name] = {"value": spec.typed, "type": io.type if io else None}
        described[name] |= {"as_str": spec.as_str(), "as_arg": as_arg}
        if as_arg:
            as_args.append(as_arg)
    described["as_args"] = as_args
    context["params"] = described
    context["globals"] = globals_.as_context()
    return context


@dataclass(frozen=True)
class ParamView:
    """How one param shows in templates (Polyaxon's ParamSpec)."""

    name: str
    value: Any
    io: V1IO | None

    @property
    def typed(self) -> Any:
        """The value as templates see it in `params.<name>.value`: a `str` input's as text."""
        if self.io is not None and self.io.type == "str":
            return [to_string(v) for v in self.value or []] if self.io.is_list else to_string(self.value)
        return self.value

    @property
    def display(self) -> Any:
        """The value as `{{ name }}` shows it: a flag as `--name` or nothing."""
        if self.io is not None and self.io.is_flag:
            return f"--{self.name}" if self.value else ""
        return self.typed

    def as_str(self) -> str:
        """`params.<name>.as_str`: the shown value's text."""
        shown = self.display
        return "" if shown is None else to_string(shown)

    def as_arg(self) -> str:
        """`params.<name>.as_arg`: the param as a command-line argument, `argFormat` first."""
        if self.io is not None and self.io.arg_format:
            if self.value is None:
                return ""
            return render_template(self.io.arg_format, {self.name: self.typed})
        if self.io is not None and self.io.is_flag:
            return f"--{self.name}" if self.value else ""
        return "" if self.value is None else f"--{self.name}={self.as_str()}"


def to_string(value: Any) -> Any:
    """Polyaxon's text of a value: numbers, lists and dicts as compact JSON (True as "true"), None kept."""
    if isinstance(value, int | float | dict | list | tuple | set):
        return compact_json(list(value) if isinstance(value, tuple | set) else value)
    return value if value is None else str(value)


def io_path(component: V1Component, name: str, key: str) -> str:
    """Where the input or output `name`'s `key` is written (`component.inputs[0].argFormat`)."""
    for section, ios in (("inputs", component.inputs), ("outputs", component.outputs)):
        for index, io in enumerate(ios or []):
            if io.name == name:
                return f"component.{section}[{index}].{key}"
    return "component"
