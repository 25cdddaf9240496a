"""Read a polyaxonfile, resolve its component (inline, pathRef, urlRef) and validate the whole of it.

Both entry points are plain blocking functions with no shared mutable state, safe to call from worker threads
(`asyncio.to_thread`): the service parses inline operations off its event loop. What an operation from outside
may do is bounded by two arguments: a `UrlPolicy` for its `urlRef` (no internal addresses by default) and a
`RenderBudget` for validating its templates.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.errors import ComponentFetchError, NotSupported, PolyaxonfileError, Problem
from bridge.polyaxon.inputs import V1Param
from bridge.polyaxon.notices import operation_warnings
from bridge.polyaxon.params import expand_runs
from bridge.polyaxon.problems import Unsupported, problems_from, raise_problems
from bridge.polyaxon.sandbox import RenderBudget, budget_scope
from bridge.polyaxon.schema import V1Component, V1Operation
from bridge.polyaxon.templating import validate_templates
from bridge.polyaxon.urlfetch import Connector, FetchRefused, Resolver, UrlPolicy, fetch

__all__ = ["ComponentFetchFailed", "UrlPolicy", "fetch_url", "load_operation", "parse_operation"]


@dataclass
class ComponentFetchFailed(PolyaxonfileError, ComponentFetchError):
    """A `urlRef`/`pathRef` component that could not be fetched: invalid input, and a fetch failure."""


def load_operation(
    path: str | Path, *, params: Mapping[str, str] | None = None, url_policy: UrlPolicy | None = None
) -> V1Operation:
    """Read, resolve and validate a polyaxonfile (`kind: operation`, or a bare component).

    `params` are `-P name=value` overrides (raw strings) over the op's `params`; they are parsed to their
    input's type like any value. On return `op.component` is set and every `matrix.values` entry and template
    has been checked; otherwise one PolyaxonfileError lists every problem. The file comes from the person
    running the bridge, so its `urlRef` may reach any address unless `url_policy` says otherwise.
    """
    source = str(path)
    data = _read_yaml(Path(path), source)
    policy = url_policy or UrlPolicy.trusted()
    op = parse_operation(data, source=source, base_dir=Path(path).parent, params=params, url_policy=policy)
    if op.matrix is not None and op.matrix.values is None:
        # A template of the service may leave its runs to the optimizer; a file to run must list them.
        message = "Field required: a mapping needs `values` (one dict of params per run)"
        raise PolyaxonfileError(source=source, problems=[Problem("matrix.values", message)])
    return op


def parse_operation(
    data: Mapping[str, Any],
    *,
    source: str,
    base_dir: Path | None,
    params: Mapping[str, str] | None = None,
    url_policy: UrlPolicy | None = None,
    render_budget: RenderBudget | None = None,
) -> V1Operation:
    """Same as `load_operation` from an already-loaded dict (a template of the Kafka service, say).

    `matrix.values` may be missing (a template); when present every entry is validated. A `pathRef` is read
    relative to `base_dir`, and is an error when `base_dir` is None. A `urlRef` is fetched under `url_policy`
    (default `UrlPolicy()`: internal addresses refused). Templates are validated within `render_budget` per run
    (default 2 s); once one run has run out of time, the others are not rendered again.
    """
    if not isinstance(data, Mapping):
        raise PolyaxonfileError(source=source, problems=[Problem("", "a polyaxonfile is a YAML mapping")])
    bare_component = data.get("kind") == "component"
    if bare_component:
        # `polyaxon run -f component.yaml` runs a bare component as an operation; so does the bridge.
        data = {"kind": "operation", "component": data}
    try:
        op = _parse(
            data,
            source=source,
            base_dir=base_dir,
            params=params,
            url_policy=url_policy,
            render_budget=render_budget,
        )
    except PolyaxonfileError as exc:
        if not bare_component:
            raise
        raise dataclasses.replace(exc, problems=[_as_component_problem(p) for p in exc.problems]) from exc
    notices = operation_warnings(op)
    return op.with_warnings([_as_component_problem(p) for p in notices] if bare_component else notices)


def _parse(
    data: Mapping[str, Any],
    *,
    source: str,
    base_dir: Path | None,
    params: Mapping[str, str] | None,
    url_policy: UrlPolicy | None,
    render_budget: RenderBudget | None,
) -> V1Operation:
    try:
        op = V1Operation.model_validate(data)
    except ValidationError as exc:
        raise_problems(source, problems_from(exc, root_sections=True))
        raise  # unreachable: raise_problems raised; keeps the type checker sure `op` is bound
    component = _resolve_component(op, source, base_dir, url_policy or UrlPolicy())
    op = op.model_copy(update={"component": component})
    if params:
        op = _with_overrides(op, params)
    if op.matrix is not None and op.matrix.values_ref is not None:
        op = _with_referenced_values(op, op.matrix.values_ref, source)
    with budget_scope(render_budget):
        if op.matrix is not None and op.matrix.values is None:
            validate_templates(component, source=source)
        else:
            expand_runs(op, source=source)
    return op


def _as_component_problem(problem: Problem) -> Problem:
    """A problem of a bare component file, at the path the user wrote (`inputs[0]`, not `component.inputs[0]`)."""
    path = problem.path
    if path == "component" or path.startswith("component."):
        return Problem(path.removeprefix("component").removeprefix("."), problem.message)
    if path.startswith("params.") and "is required" in problem.message:
        name = path.removeprefix("params.")
        return Problem(path, f"{problem.message} The file is a component: give `{name}` a value as a param.")
    return problem


def _with_referenced_values(op: V1Operation, name: str, source: str) -> V1Operation:
    """`values: "{{ configs }}"`: the runs are the value of the param `configs`, as Polyaxon resolves it."""
    assert op.matrix is not None
    assert op.component is not None
    if any(io.name == name for io in op.component.io):
        message = (
            f"`{{{{ {name} }}}}` names a declared input: Polyaxon gives an input to each run, not to the matrix "
            f"(it then fails to compile); make `{name}` a param with `contextOnly: true` instead"
        )
        raise PolyaxonfileError(source=source, problems=[Problem("matrix.values", message)])
    param = (op.params or {}).get(name)
    if param is None:
        message = f"`{{{{ {name} }}}}` names no param: add `{name}` to `params` (or pass it with -P)"
        raise PolyaxonfileError(source=source, problems=[Problem("matrix.values", message)])
    values = _literal(param.value)
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        message = f"`{name}` gives `matrix.values`, so it must be a list of dicts (one per run)"
        raise PolyaxonfileError(source=source, problems=[Problem(f"params.{name}", message)])
    matrix = op.matrix.model_copy(update={"values": [dict(v) for v in values], "values_ref": None})
    return op.model_copy(update={"matrix": matrix})


def _literal(value: Any) -> Any:
    """A param given as text (`-P configs='[{"lr": 0.1}]'`) is read as JSON, else as a Python literal (the text
    Polyaxon renders a list into)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _with_overrides(op: V1Operation, overrides: Mapping[str, str]) -> V1Operation:
    merged = dict(op.params or {})
    for name, raw in overrides.items():
        old = merged.get(name)
        merged[name] = old.model_copy(update={"value": raw}) if old else V1Param(value=raw)
    return op.model_copy(update={"params": merged})


def _resolve_component(op: V1Operation, source: str, base_dir: Path | None, policy: UrlPolicy) -> V1Component:
    if op.component is not None:
        return op.component
    for key, ref in (("hubRef", op.hub_ref), ("dagRef", op.dag_ref)):
        if ref:
            message = (
                f"`{key}` is not supported by the bridge: it needs a Polyaxon server; "
                "give the component inline (`component:`), as a file (`pathRef:`) or a URL (`urlRef:`)"
            )
            raise NotSupported(source=source, problems=[Unsupported(key, message)])
    if op.path_ref:
        if base_dir is None:
            message = "`pathRef` needs a base directory, and this operation came without one"
            raise PolyaxonfileError(source=source, problems=[Problem("pathRef", message)])
        file = base_dir / op.path_ref
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            message = f"cannot read the component `{file}`: {getattr(exc, 'strerror', None) or exc}"
            raise ComponentFetchFailed(source=source, problems=[Problem("pathRef", message)]) from exc
        return _parse_component(parse_yaml(text, str(file)), str(file))
    if op.url_ref:
        text = fetch_url(op.url_ref, source=source, policy=policy)
        if policy.allow_internal:
            return _parse_component(parse_yaml(text, op.url_ref), op.url_ref)
        return _parse_fetched_component(text, op.url_ref, source)
    message = "the operation has no component: give `component:`, `pathRef:` or `urlRef:`"
    raise PolyaxonfileError(source=source, problems=[Problem("component", message)])


def _parse_component(data: Any, source: str) -> V1Component:
    if not isinstance(data, Mapping):
        raise PolyaxonfileError(source=source, problems=[Problem("", "a component is a YAML mapping")])
    if data.get("kind", "component") != "component":
        message = f"a referenced file must be `kind: component`, not `{data.get('kind')}`"
        raise PolyaxonfileError(source=source, problems=[Problem("kind", message)])
    try:
        return V1Component.model_validate(data)
    except ValidationError as exc:
        raise_problems(source, problems_from(exc))
        raise  # unreachable, as above


def _parse_fetched_component(text: str, url: str, source: str) -> V1Component:
    """The component an untrusted policy fetched. Its problems are counted, not shown: a YAML error or an
    unknown key quotes the response, and the response may be an internal service's (allow-listed) secrets."""
    try:
        return _parse_component(parse_yaml(text, url), url)
    except PolyaxonfileError as exc:
        if isinstance(exc, NotSupported):
            raise
        count = len(exc.problems)
        message = (
            f"the response of {url} is not a valid component ({count} problem{'s' if count != 1 else ''}; "
            "not shown, so that nothing a server sends is echoed)"
        )
        raise PolyaxonfileError(source=source, problems=[Problem("urlRef", message)]) from None


def fetch_url(
    url: str,
    *,
    source: str,
    policy: UrlPolicy | None = None,
    resolver: Resolver | None = None,
    connector: Connector | None = None,
) -> str:
    """GET an http(s) component under `policy` (default `UrlPolicy()`): one deadline for the whole fetch, a size
    cap, internal addresses refused unless allowed. `resolver`/`connector` replace DNS and TCP (tests)."""
    try:
        body = fetch(url, policy or UrlPolicy(), resolver=resolver, connector=connector)
        return body.decode("utf-8")
    except FetchRefused as exc:
        reason = str(exc)
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    problem = Problem("urlRef", f"cannot fetch the component from {url}: {reason}")
    raise ComponentFetchFailed(source=source, problems=[problem])


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PolyaxonfileError(source=source, problems=[Problem("", f"cannot read the file: {reason}")]) from exc
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text to data, or a `PolyaxonfileError` that says where it is not YAML (or that it is empty)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolyaxonfileError(source=source, problems=[Problem("", f"invalid YAML{where}: {problem}")]) from exc
    if data is None:
        raise PolyaxonfileError(source=source, problems=[Problem("", "the file is empty")])
    return data
