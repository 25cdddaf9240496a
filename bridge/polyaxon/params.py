"""Expand a mapping into runs: the op's params under each dict, every value parsed to its input's type."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bridge.errors import PolyaxonfileError, Problem
from bridge.polyaxon.inputs import RESERVED_IO_NAMES, V1IO
from bridge.polyaxon.problems import raise_problems
from bridge.polyaxon.schema import V1Component, V1Operation
from bridge.polyaxon.templating import template_problems
from bridge.polyaxon.types import TypeSyntaxError, ValueParseError, parse_type, parse_value

__all__ = ["did_you_mean", "expand_runs", "parse_io_value", "undeclared_param_warnings"]


def expand_runs(
    op: V1Operation,
    values: Sequence[Mapping[str, Any]] | None = None,
    *,
    source: str | None = None,
    values_path: str = "matrix.values",
) -> list[dict[str, Any]]:
    """One dict of typed params per run, or one PolyaxonfileError listing every problem of every run.

    Each run's params are the op's `params` with its mapping dict over them. Declared inputs are parsed to
    their type; optional ones left out take their default; required ones left out are an error; undeclared
    keys are kept as context params, or rejected when `strictParams` is on. `values` defaults to
    `op.matrix.values`; an operation without a matrix is one run of its params. Problems are reported at
    `{values_path}[i].<name>` for a run's own values and at `params.<name>` for the op's params. Every valid
    run's templates are rendered once, so an unknown name fails here rather than when the run starts.
    """
    where = source or op.name or "<operation>"
    component = op.component
    if component is None:
        raise PolyaxonfileError(source=where, problems=[Problem("component", "the component is not resolved")])
    entries = _entries(op, values, values_path, where)

    problems: list[Problem] = []
    base, broken = _op_params(op, component, problems)
    runs: list[dict[str, Any]] = []
    valid: list[int] = []
    # Without a matrix the one run's values are only the op's params: a missing input is a missing param.
    single = op.matrix is None and values_path == "matrix.values" and len(entries) == 1
    if not entries:
        problems += _unpassed_required(component, base, broken, values_path)
    for index, entry in enumerate(entries):
        path = "params" if single else f"{values_path}[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(Problem(path, "Input should be a valid dictionary of params"))
            runs.append({})
            continue
        before = len(problems)
        runs.append(_run_params(op, component, entry, base=base, broken=broken, path=path, problems=problems))
        if len(problems) == before and not broken:
            valid.append(index)

    problems += _template_problems(component, runs, valid, entries, values_path)
    raise_problems(where, problems)
    return runs


def _entries(
    op: V1Operation, values: Sequence[Mapping[str, Any]] | None, values_path: str, where: str
) -> Sequence[Any]:
    if values is not None:
        return values
    if op.matrix is None:
        return [{}]
    if op.matrix.values is None:
        message = "Field required: a mapping needs `values` (one dict of params per run)"
        raise PolyaxonfileError(source=where, problems=[Problem(values_path, message)])
    return op.matrix.values


def _unpassed_required(
    component: V1Component, base: Mapping[str, Any], broken: set[str], values_path: str
) -> list[Problem]:
    """With no run to give them, required inputs must come from the op's params (Polyaxon checks them too)."""
    return [
        Problem(values_path, f"Input `{io.name}` is required, no param was passed (`{values_path}` is empty).")
        for io in component.inputs or []
        if io.name not in base and io.name not in broken and not (io.optional or io.delayed)
    ]


def _op_params(op: V1Operation, component: V1Component, problems: list[Problem]) -> tuple[dict[str, Any], set[str]]:
    """The op's own params, parsed once (a problem there is reported once, not per run)."""
    declared = {io.name: io for io in component.io}
    parsed: dict[str, Any] = {}
    broken: set[str] = set()
    for name, param in (op.params or {}).items():
        path = f"params.{name}"
        io = declared.get(name)
        if io is not None:
            value, problem = parse_io_value(io, param.value, path)
        else:
            value, problem = (
                param.value,
                _undeclared(name, path, op.effective_strict_params, param.context_only, declared),
            )
        if problem is None:
            parsed[name] = value
        else:
            problems.append(problem)
            broken.add(name)
    return parsed, broken


def _run_params(
    op: V1Operation,
    component: V1Component,
    entry: Mapping[str, Any],
    *,
    base: Mapping[str, Any],
    broken: set[str],
    path: str,
    problems: list[Problem],
) -> dict[str, Any]:
    run: dict[str, Any] = {}
    inputs = {io.name for io in component.inputs or []}
    for io in component.io:
        if io.name in entry:
            value, problem = parse_io_value(io, entry[io.name], f"{path}.{io.name}")
        elif io.name in base or io.name in broken:
            value, problem = base.get(io.name), None
        elif io.name in inputs:
            value, problem = parse_io_value(io, None, f"{path}.{io.name}")
        else:
            continue  # an output nobody passed: the run will produce it
        if problem is None:
            run[io.name] = value
        else:
            problems.append(problem)
    declared = [io.name for io in component.io]
    for name, value in entry.items():
        if name in declared:
            continue
        problem = _undeclared(str(name), f"{path}.{name}", op.effective_strict_params, None, declared)
        if problem is None:
            run[name] = value
        else:
            problems.append(problem)
    for name, value in base.items():
        run.setdefault(name, value)
    return run


def did_you_mean(name: str, declared: Iterable[str]) -> str:
    """`; did you mean `x`?` with the declared name closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


MAX_PARAM_WARNINGS = 10
"""The most undeclared params named one by one; the rest are counted in one more sentence (a result stays small)."""


def undeclared_param_warnings(
    op: V1Operation, template: str, given: Iterable[str], *, path: str = "params"
) -> list[str]:
    """One sentence per name of `given` that the template `op` neither declares nor marks `contextOnly`, with the
    closest declared name: `params.learnig_rate: the template `cnn` declares no `learnig_rate`; the run gets it as
    a context param only; did you mean `learning_rate`?`. Each names its param as `path.<name>`; past
    `MAX_PARAM_WARNINGS`, one sentence counts the others. None with strictParams: such a param is refused then."""
    component = op.component
    if component is None or op.effective_strict_params:
        return []
    declared = [io.name for io in component.io]
    quiet = set(declared) | {name for name, p in (op.params or {}).items() if p.context_only}
    undeclared = [str(name) for name in given if name not in quiet]
    out = [
        f"{path}.{_short(name)}: the template `{template}` declares no `{_short(name)}`; the run gets it as a context"
        f" param only{did_you_mean(name, declared)}"
        for name in undeclared[:MAX_PARAM_WARNINGS]
    ]
    if len(undeclared) > MAX_PARAM_WARNINGS:
        out.append(
            f"{path}: {len(undeclared) - MAX_PARAM_WARNINGS} more param(s) that the template `{template}` does not"
            " declare; the run gets them as context params only"
        )
    return out


def _short(name: str, most: int = 80) -> str:
    return name if len(name) <= most else name[:most] + "..."


def _undeclared(
    name: str, path: str, strict: bool, context_only: bool | None, declared: Iterable[str]
) -> Problem | None:
    if name in RESERVED_IO_NAMES:
        return Problem(path, f"`{name}` is taken by the templating context; use another name")
    if strict and context_only is not True:
        return Problem(
            path,
            f"Received undeclared param `{name}`{did_you_mean(name, declared)}"
            " (declare an input/output or set `contextOnly: true`).",
        )
    return None


def parse_io_value(io: V1IO, value: Any, path: str) -> tuple[Any, Problem | None]:
    """Parse one value for `io`: its default when None and optional, else the typed value or a Problem."""
    if value is None:
        if io.optional or io.delayed:
            return _default(io), None
        return None, Problem(path, f"Input `{io.name}` is required, no param was passed.")
    if io.type is None:
        return value, None
    try:
        parsed = parse_value(parse_type(io.type, is_list=bool(io.is_list)), value)
    except (ValueParseError, TypeSyntaxError) as exc:
        return None, Problem(path, str(exc))
    problem = _check_validation(io, parsed)
    return (parsed, None) if problem is None else (None, Problem(path, problem))


def _default(io: V1IO) -> Any:
    if io.value is None or io.type is None:
        return io.value
    return parse_value(parse_type(io.type, is_list=bool(io.is_list)), io.value)


def _check_validation(io: V1IO, value: Any) -> str | None:  # noqa: PLR0911, PLR0912  # one check per rule
    """Polyaxon's `validation:` predicates (and the older `options`), applied to each item of a list."""
    options = io.allowed_values
    if options is not None and value not in options:
        return f"The value `{value}` provided for `{io.name}` is not one of the possible values {options}."
    rules = io.validation
    if rules is None:
        return None
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, int | float) and not isinstance(item, bool):
            if rules.gt is not None and not item > rules.gt:
                return f"Value `{item}` must be greater than `{rules.gt}`"
            if rules.ge is not None and not item >= rules.ge:
                return f"Value `{item}` must be greater than or equal to `{rules.ge}`"
            if rules.lt is not None and not item < rules.lt:
                return f"Value `{item}` must be less than `{rules.lt}`"
            if rules.le is not None and not item <= rules.le:
                return f"Value `{item}` must be less than or equal to `{rules.le}`"
            if rules.multiple_of is not None and item % rules.multiple_of != 0:
                return f"Value `{item}` must be a multiple of `{rules.multiple_of}`"
        if isinstance(item, str):
            if rules.regex is not None and not re.match(rules.regex, item):
                return f"Value `{item}` does not match the regex `{rules.regex}`"
            if rules.min_length is not None and len(item) < rules.min_length:
                return f"Value `{item}` must be at least {rules.min_length} characters long"
            if rules.max_length is not None and len(item) > rules.max_length:
                return f"Value `{item}` must be at most {rules.max_length} characters long"
        if isinstance(item, Mapping):
            problem = _check_keys(rules.keys, rules.contains_keys, rules.excludes_keys, item)
            if problem:
                return problem
    return _check_collection(io, value)


def _check_keys(
    keys: list[str] | None, contains: list[str] | None, excludes: list[str] | None, item: Mapping[str, Any]
) -> str | None:
    if keys is not None and set(item) != set(keys):
        return f"Value must have exactly the keys {keys}"
    if contains is not None and not set(contains) <= set(item):
        return f"Value must contain the keys {contains}"
    if excludes is not None and set(excludes) & set(item):
        return f"Value must not contain the keys {excludes}"
    return None


def _check_collection(io: V1IO, value: Any) -> str | None:
    rules = io.validation
    if rules is None or not isinstance(value, list | str | Mapping):
        return None
    if isinstance(value, list):
        if rules.min_items is not None and len(value) < rules.min_items:
            return f"Value must have at least {rules.min_items} items"
        if rules.max_items is not None and len(value) > rules.max_items:
            return f"Value must have at most {rules.max_items} items"
    missing = [c for c in rules.contains or [] if c not in value]
    if missing:
        return f"Value must contain {missing}"
    present = [e for e in rules.excludes or [] if e in value]
    if present:
        return f"Value must not contain {present}"
    return None


def _template_problems(
    component: V1Component,
    runs: list[dict[str, Any]],
    valid: list[int],
    entries: Sequence[Any],
    values_path: str,
) -> list[Problem]:
    """Render every valid run's templates and report each failing template once.

    A template that fails for every run (an unknown name) is reported plainly; one that fails only for some
    runs' values names the first of them. With no runs at all, placeholder values stand in.
    """
    if not entries:
        return template_problems(component, None)
    first: dict[str, tuple[int, Problem]] = {}
    failures: dict[str, int] = {}
    for index in valid:
        for problem in template_problems(component, runs[index]):
            first.setdefault(problem.path, (index, problem))
            failures[problem.path] = failures.get(problem.path, 0) + 1
    found: list[Problem] = []
    for path, (index, problem) in first.items():
        if failures[path] == len(valid):
            found.append(problem)
        else:
            found.append(Problem(path, f"{problem.message} (with the params of {values_path}[{index}])"))
    return found
