"""Render a component's container for one run: argv, env and working dir, never through a shell.

The context (context.py) is Polyaxon's: each param by name (`{{ learning_rate }}`),
`params.<name>.value|as_str|as_arg|type`, `params.as_args`, and `globals.*`. Jinja runs sandboxed with
StrictUndefined, so an unknown name is an error that names the template's place
(`component.run.container.args[2]`) instead of an empty string, and on a time and size budget per run
(sandbox.py), so a template from a topic cannot spin or fill memory.

A command or args item that is exactly `{{ params.as_args }}` becomes one argv item per param; anywhere else
the list renders as its text. A one-string `command` or `args` is one argv item, as in Polyaxon (which hands it
to Kubernetes as a one-item list): `command: ["/bin/sh", "-c"]` with `args: "train --lr={{ lr }} && echo done"`
runs that whole line in the shell. Only when the string renders to a list literal (`"{{ params.as_args }}"`,
`"[1, 2]"`) does it become several items, as Polyaxon's parser reads such text back into a list.

Defaults that are templates (an output's `value: "{{ image }}:v1"`) are rendered in the run's context before
anything else uses them, as Polyaxon's compiler renders inputs and outputs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from bridge.errors import PolyaxonfileError, Problem
from bridge.polyaxon.context import RENDER_ERRORS, ParamView, RunGlobals, build_context, io_path, to_string
from bridge.polyaxon.sandbox import RenderBudget, add_filter, metered, render_template
from bridge.polyaxon.schema import V1Component
from bridge.polyaxon.types import TypeSyntaxError, ValueParseError, parse_type, parse_value

__all__ = ["RenderBudget", "RenderedRun", "render_run", "template_problems", "validate_templates"]

_CONTAINER = "component.run.container"


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
    params = _with_rendered_defaults(component, params, globals_, problems)
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
    env.update(_io_env(component, params))  # the defaults rendered above included
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
        return _render_one_string(templates, path, context, problems)
    argv: list[str] = []
    for index, template in enumerate(templates):
        if _AS_ARGS.fullmatch(template):
            argv += context["params"]["as_args"]
            continue
        value = _render_one(template, f"{path}[{index}]", context, problems)
        # An element that renders to nothing is a false flag or an unset optional (Polyaxon omits an item that
        # renders "None" from a template): no empty argument.
        if value == "" or (value == "None" and template != "None"):
            continue
        argv.append(value)
    return argv


_AS_ARGS = re.compile(r"\{\{-?\s*params\.as_args\s*-?\}\}")


def _render_one_string(template: str, path: str, context: Mapping[str, Any], problems: list[Problem]) -> list[str]:
    """A one-string command or args: one argv item, or the items of the list literal it renders to."""
    if _AS_ARGS.fullmatch(template.strip()):
        return list(context["params"]["as_args"])
    value = _render_one(template, path, context, problems)
    literal = _list_literal(value)
    if literal is not None:
        return [item if isinstance(item, str) else to_string(item) for item in literal]
    # Polyaxon reads "None" as no value at all, and an empty string is no argument.
    return [] if value.strip() in ("", "None") else [value]


def _list_literal(text: str) -> list[Any] | None:
    stripped = text.strip()
    if not stripped.startswith(("[", "(")):
        return None
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return list(value) if isinstance(value, list | tuple) else None


def _render_one(template: str, path: str, context: Mapping[str, Any], problems: list[Problem]) -> str:
    try:
        return render_template(template, context)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(Problem(path, f"template syntax error in `{template}`: {exc.message}"))
    except jinja2.UndefinedError as exc:
        problems.append(Problem(path, f"unknown name in template `{template}`: {exc.message}"))
    except RENDER_ERRORS as exc:
        problems.append(Problem(path, f"cannot render template `{template}`: {exc}"))
    return ""


def _map_format(value: Any, pattern: str, variable_name: str | None = None) -> str:
    # Polyaxon's `map_format` filter: printf-style formatting of a value.
    return pattern % ({variable_name: value} if variable_name else value)


add_filter("map_format", _map_format)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _with_rendered_defaults(
    component: V1Component, params: Mapping[str, Any], globals_: RunGlobals, problems: list[Problem]
) -> Mapping[str, Any]:
    """`params` with every default that is a template (`value: "{{ image }}:v1"`) rendered in the run's context.

    A default still in use is one the run did not override: absent from `params`, or the same text (inputs'
    defaults are filled in by `expand_runs` before rendering). The rendered text is then read as the input's type.
    """
    pending = [io for io in component.io if _is_template(io.value) and params.get(io.name, io.value) == io.value]
    if not pending:
        return params
    context = build_context(component, params, globals_)
    resolved = dict(params)
    for io in pending:
        path = io_path(component, io.name, "value")
        text = _render_one(str(io.value), path, context, problems)
        if io.type is None:
            resolved[io.name] = text
            continue
        try:
            resolved[io.name] = parse_value(parse_type(io.type, is_list=bool(io.is_list)), text)
        except (ValueParseError, TypeSyntaxError) as exc:
            problems.append(Problem(path, f"the default renders to `{text}`: {exc}"))
    return resolved


def _io_env(component: V1Component, params: Mapping[str, Any]) -> dict[str, str]:
    """`toEnv` on an input/output: the value's text in that environment variable."""
    env: dict[str, str] = {}
    for io in component.io:
        if io.to_env and params.get(io.name, io.value) is not None:
            env[io.to_env] = ParamView(io.name, params.get(io.name, io.value), io).as_str()
    return env


def _sample_params(component: V1Component) -> dict[str, Any]:
    """Check-time values: each input's default, else a placeholder of its type."""
    samples = {"int": 1, "float": 1.0, "bool": True, "dict": {}, "list": []}
    params: dict[str, Any] = {}
    for io in component.inputs or []:
        if io.value is not None and not _is_template(io.value):
            params[io.name] = io.value
        elif io.is_list:
            params[io.name] = []
        else:
            params[io.name] = samples.get(io.type or "", "x")
    return params
