"""Render a component's container for one run: argv, env and working dir, never through a shell.

The context is Polyaxon's: each param by name (`{{ learning_rate }}`),
`params.<name>.value|as_str|as_arg|type`, `params.as_args`, and `globals.*`. Jinja runs sandboxed with
StrictUndefined, so an unknown name is an error that names the template's place
(`component.run.container.args[2]`) instead of an empty string, and on a time and size budget per run
(sandbox.py), so a template from a topic cannot spin or fill memory.

A command or args item that is exactly `{{ params.as_args }}` becomes one argv item per param, as in Polyaxon
(whose parser turns the rendered list back into a list); anywhere else the list renders as its text.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from bridge.errors import PolyaxonfileError, Problem
from bridge.polyaxon.sandbox import RenderBudget, add_filter, metered, render_template
from bridge.polyaxon.schema import V1IO, V1Component
from bridge.polyaxon.types import compact_json

__all__ = ["RenderBudget", "RenderedRun", "RunGlobals", "render_run", "template_problems", "validate_templates"]

_CONTAINER = "component.run.container"


@dataclass(frozen=True)
class RunGlobals:
    """What a run's templates see as `globals.*`."""

    run_uuid: str
    run_name: str
    artifacts_path: str
    run_outputs_path: str
    iteration: int | None = None

    def as_context(self) -> dict[str, Any]:
        """Polyaxon's names for these values (`uuid` and `run_uuid`, `name`, `run_artifacts_path`, ...)."""
        return {
            "uuid": self.run_uuid,
            "run_uuid": self.run_uuid,
            "name": self.run_name,
            "run_name": self.run_name,
            "artifacts_path": self.artifacts_path,
            "run_artifacts_path": self.artifacts_path,
            "run_outputs_path": self.run_outputs_path,
            "iteration": self.iteration,
        }


@dataclass(frozen=True)
class RenderedRun:
    """A run ready to start: its argv (no shell), the env it adds, and where it starts."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None


# Placeholders for check-time rendering only; a real run always gets its own globals.
_CHECK_GLOBALS = RunGlobals(
    run_uuid="00000000000000000000000000000000",
    run_name="check",
    artifacts_path="/tmp/bridge-check/artifacts",  # never written: check renders, runs nothing
    run_outputs_path="/tmp/bridge-check/artifacts/outputs",  # same
    iteration=0,
)


def render_run(
    component: V1Component,
    params: Mapping[str, Any],
    globals_: RunGlobals,
    *,
    source: str = "<operation>",
    budget: RenderBudget | None = None,
) -> RenderedRun:
    """Render the container of `component` for one run's typed params (as `expand_runs` returns them), within
    `budget` (default: the enclosing `budget_scope`'s, else 2 s and 4 Mi characters)."""
    rendered, problems = _render(component, params, globals_, budget)
    if problems:
        raise PolyaxonfileError(source=source, problems=problems)
    assert rendered is not None  # _render returns a run exactly when it found no problem
    return rendered


def template_problems(
    component: V1Component,
    params: Mapping[str, Any] | None,
    globals_: RunGlobals | None = None,
    *,
    budget: RenderBudget | None = None,
) -> list[Problem]:
    """Every template problem of `component` for `params` (None: placeholder values for each input); running
    out of `budget` is one."""
    sample = _sample_params(component) if params is None else params
    return _render(component, sample, globals_ or _CHECK_GLOBALS, budget)[1]


def validate_templates(
    component: V1Component,
    params: Mapping[str, Any] | None = None,
    *,
    source: str = "<operation>",
    budget: RenderBudget | None = None,
) -> None:
    """Render every template once (with `params`, else placeholders) so unknown names fail before a run."""
    problems = template_problems(component, params, budget=budget)
    if problems:
        raise PolyaxonfileError(source=source, problems=problems)


def _render(
    component: V1Component, params: Mapping[str, Any], globals_: RunGlobals, budget: RenderBudget | None
) -> tuple[RenderedRun | None, list[Problem]]:
    try:
        with metered(budget):
            return _render_all(component, params, globals_)
    except jinja2.TemplateError as exc:  # a budget already spent in this scope: the run is not rendered at all
        return None, [Problem(_CONTAINER, f"cannot render: {exc}")]


def _render_all(
    component: V1Component, params: Mapping[str, Any], globals_: RunGlobals
) -> tuple[RenderedRun | None, list[Problem]]:
    container = component.run.container
    problems: list[Problem] = []
    context = build_context(component, params, globals_, problems)
    argv: list[str] = []
    for name, templates in (("command", container.command), ("args", container.args)):
        argv += _render_argv(templates, f"{_CONTAINER}.{name}", context, problems)
    if not argv and not problems:
        # No image entrypoint to fall back on: a local or Ray run needs a program to start.
        problems.append(Problem(_CONTAINER, "needs a `command` or `args` to run (the rendered argv is empty)"))
    env: dict[str, str] = {}
    for index, var in enumerate(container.env or []):
        env[var.name] = _render_one(var.value or "", f"{_CONTAINER}.env[{index}].value", context, problems)
    env.update(_io_env(component, params))
    working_dir = None
    if container.working_dir is not None:
        working_dir = _render_one(container.working_dir, f"{_CONTAINER}.workingDir", context, problems)
    if problems:
        return None, problems
    return RenderedRun(argv=argv, env=env, working_dir=working_dir or None), []


def _render_argv(
    templates: list[str] | str | None, path: str, context: Mapping[str, Any], problems: list[Problem]
) -> list[str]:
    if templates is None:
        return []
    if isinstance(templates, str):
        try:
            pieces = [(token, path) for token in split_template(templates)]
        except ValueError as exc:
            problems.append(Problem(path, f"cannot split into arguments: {exc}"))
            return []
    else:
        pieces = [(template, f"{path}[{index}]") for index, template in enumerate(templates)]
    argv: list[str] = []
    for template, where in pieces:
        if _AS_ARGS.fullmatch(template):
            argv += context["params"]["as_args"]
            continue
        value = _render_one(template, where, context, problems)
        # An element that renders to nothing is a false flag or an unset optional (Polyaxon omits an item that
        # renders "None" from a template): no empty argument.
        if value == "" or (value == "None" and template != "None"):
            continue
        argv.append(value)
    return argv


_AS_ARGS = re.compile(r"\{\{-?\s*params\.as_args\s*-?\}\}")
_TEMPLATE_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def split_template(template: str) -> list[str]:
    """Split a one-string command into argument templates like a shell would, keeping `{{ ... }}` whole.

    Splitting happens before rendering, so a value (even `"; rm -rf ~"`) always stays inside its argument.
    """
    blocks: list[str] = []

    def hide(match: re.Match[str]) -> str:
        blocks.append(match.group(0))
        return f"\x00{len(blocks) - 1}\x00"

    hidden = _TEMPLATE_BLOCK.sub(hide, template)
    tokens = shlex.split(hidden, posix=True)
    return [re.sub(r"\x00(\d+)\x00", lambda m: blocks[int(m.group(1))], token) for token in tokens]


# What a template can raise while rendering: Jinja's errors (the budget's included), and what Python raises for
# a bad value (`1 // 0`, `{}.x.y`) or a template that calls itself without end.
_RENDER_ERRORS = (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, RecursionError)


def _render_one(template: str, path: str, context: Mapping[str, Any], problems: list[Problem]) -> str:
    try:
        return render_template(template, context)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(Problem(path, f"template syntax error in `{template}`: {exc.message}"))
    except jinja2.UndefinedError as exc:
        problems.append(Problem(path, f"unknown name in template `{template}`: {exc.message}"))
    except _RENDER_ERRORS as exc:
        problems.append(Problem(path, f"cannot render template `{template}`: {exc}"))
    return ""


def _map_format(value: Any, pattern: str, variable_name: str | None = None) -> str:
    # Polyaxon's `map_format` filter: printf-style formatting of a value.
    return pattern % ({variable_name: value} if variable_name else value)


add_filter("map_format", _map_format)


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
        spec = _ParamView(name, value, io)
        try:
            as_arg = spec.as_arg()
        except _RENDER_ERRORS as exc:
            if problems is not None:
                problems.append(Problem(_io_path(component, name), f"cannot render argFormat: {exc}"))
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
class _ParamView:
    """How one param shows in templates (Polyaxon's ParamSpec)."""

    name: str
    value: Any
    io: V1IO | None

    @property
    def typed(self) -> Any:
        if self.io is not None and self.io.type == "str":
            return [to_string(v) for v in self.value or []] if self.io.is_list else to_string(self.value)
        return self.value

    @property
    def display(self) -> Any:
        if self.io is not None and self.io.is_flag:
            return f"--{self.name}" if self.value else ""
        return self.typed

    def as_str(self) -> str:
        shown = self.display
        return "" if shown is None else to_string(shown)

    def as_arg(self) -> str:
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


def _io_path(component: V1Component, name: str) -> str:
    for section, ios in (("inputs", component.inputs), ("outputs", component.outputs)):
        for index, io in enumerate(ios or []):
            if io.name == name:
                return f"component.{section}[{index}].argFormat"
    return "component"


def _io_env(component: V1Component, params: Mapping[str, Any]) -> dict[str, str]:
    """`toEnv` on an input/output: the value's text in that environment variable."""
    env: dict[str, str] = {}
    for io in component.io:
        if io.to_env and params.get(io.name, io.value) is not None:
            env[io.to_env] = _ParamView(io.name, params.get(io.name, io.value), io).as_str()
    return env


def _sample_params(component: V1Component) -> dict[str, Any]:
    """Check-time values: each input's default, else a placeholder of its type."""
    samples = {"int": 1, "float": 1.0, "bool": True, "dict": {}, "list": []}
    params: dict[str, Any] = {}
    for io in component.inputs or []:
        if io.value is not None:
            params[io.name] = io.value
        elif io.is_list:
            params[io.name] = []
        else:
            params[io.name] = samples.get(io.type or "", "x")
    return params
