"""Builders for polyaxonfile dicts, so each test shows only what it is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.errors import PolyaxonfileError, Problem
from bridge.polyaxon import V1Operation, parse_operation

FIXTURES = Path(__file__).parent / "fixtures"


def component(
    inputs: list[dict[str, Any]] | None = None,
    *,
    args: Any = None,
    command: Any = None,
    outputs: list[dict[str, Any]] | None = None,
    **container: Any,
) -> dict[str, Any]:
    """An inline component; the container runs `echo` unless told otherwise."""
    return {
        "kind": "component",
        "inputs": inputs or [],
        "outputs": outputs or [],
        "run": {
            "kind": "job",
            "container": {
                "command": command or ["echo"],
                **({"args": args} if args is not None else {}),
                **container,
            },
        },
    }


def operation(values: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A mapping operation over the quick-start component (by pathRef) unless `component` is given."""
    data: dict[str, Any] = {"version": 1.1, "kind": "operation"}
    if "component" not in fields:
        data["pathRef"] = "components/typed.yaml"
    matrix = {"kind": "mapping", **fields.pop("matrix", {})}
    if values is not None:
        matrix["values"] = values
    data["matrix"] = matrix
    data.update(fields)
    return data


def parse(data: dict[str, Any]) -> V1Operation:
    """parse_operation relative to the fixtures directory."""
    return parse_operation(data, source="test.yaml", base_dir=FIXTURES)


def problems(data: dict[str, Any]) -> list[Problem]:
    """The problems parse() finds (it must find some)."""
    with pytest.raises(PolyaxonfileError) as caught:
        parse(data)
    return caught.value.problems


def paths(data: dict[str, Any]) -> list[str]:
    """Just the paths of the problems."""
    return [p.path for p in problems(data)]
