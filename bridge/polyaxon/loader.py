"""Read a polyaxonfile, resolve its component (inline, pathRef, urlRef) and validate the whole of it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from bridge.errors import ComponentFetchError, NotSupported, PolyaxonfileError, Problem
from bridge.polyaxon.params import expand_runs
from bridge.polyaxon.problems import Unsupported, problems_from, raise_problems
from bridge.polyaxon.schema import V1Component, V1Operation, V1Param
from bridge.polyaxon.templating import validate_templates

__all__ = ["ComponentFetchFailed", "load_operation", "parse_operation"]

URL_TIMEOUT_S = 10.0
MAX_COMPONENT_BYTES = 5 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass
class ComponentFetchFailed(PolyaxonfileError, ComponentFetchError):
    """A `urlRef`/`pathRef` component that could not be fetched: invalid input, and a fetch failure."""


def load_operation(path: str | Path, *, params: Mapping[str, str] | None = None) -> V1Operation:
    """Read, resolve and validate a polyaxonfile (`kind: operation`, or a bare component).

    `params` are `-P name=value` overrides (raw strings) over the op's `params`; they are parsed to their
    input's type like any value. On return `op.component` is set and every `matrix.values` entry and template
    has been checked; otherwise one PolyaxonfileError lists every problem.
    """
    source = str(path)
    data = _read_yaml(Path(path), source)
    return parse_operation(data, source=source, base_dir=Path(path).parent, params=params)


def parse_operation(
    data: Mapping[str, Any],
    *,
    source: str,
    base_dir: Path | None,
    params: Mapping[str, str] | None = None,
) -> V1Operation:
    """Same as `load_operation` from an already-loaded dict (a template of the Kafka service, say).

    `matrix.values` may be missing (a template); when present every entry is validated. A `pathRef` is read
    relative to `base_dir`, and is an error when `base_dir` is None.
    """
    if not isinstance(data, Mapping):
        raise PolyaxonfileError(source=source, problems=[Problem("", "a polyaxonfile is a YAML mapping")])
    if data.get("kind") == "component":
        # `polyaxon run -f component.yaml` runs a bare component as an operation; so does the bridge.
        data = {"kind": "operation", "component": data}
    try:
        op = V1Operation.model_validate(data)
    except ValidationError as exc:
        raise_problems(source, problems_from(exc, root_sections=True))
        raise  # unreachable: raise_problems raised; keeps the type checker sure `op` is bound
    op = op.model_copy(update={"component": _resolve_component(op, source, base_dir)})
    if params:
        op = _with_overrides(op, params)
    if op.matrix is not None and op.matrix.values is None:
        assert op.component is not None  # resolved just above
        validate_templates(op.component, source=source)
    else:
        expand_runs(op, source=source)
    return op


def _with_overrides(op: V1Operation, overrides: Mapping[str, str]) -> V1Operation:
    merged = dict(op.params or {})
    for name, raw in overrides.items():
        old = merged.get(name)
        merged[name] = old.model_copy(update={"value": raw}) if old else V1Param(value=raw)
    return op.model_copy(update={"params": merged})


def _resolve_component(op: V1Operation, source: str, base_dir: Path | None) -> V1Component:
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
        return _parse_component(_parse_yaml(text, str(file)), str(file))
    if op.url_ref:
        return _parse_component(_parse_yaml(fetch_url(op.url_ref, source=source), op.url_ref), op.url_ref)
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


def fetch_url(url: str, *, source: str, timeout_s: float = URL_TIMEOUT_S, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """GET an http(s) component with a deadline for the whole download and a size cap."""

    def fail(reason: str) -> ComponentFetchFailed:
        return ComponentFetchFailed(
            source=source, problems=[Problem("urlRef", f"cannot fetch the component from {url}: {reason}")]
        )

    if urlsplit(url).scheme not in ("http", "https"):
        raise fail("only http:// and https:// URLs are fetched")
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": "suggestion-bridge"})  # scheme checked above
    body = bytearray()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # same
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise fail(f"it is larger than {max_bytes} bytes")
            while chunk := response.read(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise fail(f"it is larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise fail(f"timed out after {timeout_s:g} s")
    except urllib.error.HTTPError as exc:
        raise fail(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise fail(str(exc.reason)) from exc
    except TimeoutError as exc:
        raise fail(f"timed out after {timeout_s:g} s") from exc
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("it is not UTF-8 text") from exc


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PolyaxonfileError(source=source, problems=[Problem("", f"cannot read the file: {reason}")]) from exc
    return _parse_yaml(text, source)


def _parse_yaml(text: str, source: str) -> Any:
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
