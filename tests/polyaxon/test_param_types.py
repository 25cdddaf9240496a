"""Every value is parsed to its input's type as Polyaxon 2.x does (cases checked against polyaxon 2.18)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from bridge.polyaxon import expand_runs
from bridge.polyaxon.types import TypeSyntaxError, ValueParseError, parse_type, parse_value
from tests.polyaxon.support import component, operation, parse, problems

ACCEPTED = [
    ("int", 5, 5),
    ("int", "5", 5),
    ("int", 5.0, 5),
    ("int", "5.0", 5),
    ("int", True, 1),  # pydantic's lax mode, which Polyaxon uses, takes a bool as an int
    ("float", 1, 1.0),
    ("float", "0.1", 0.1),
    ("float", True, 1.0),
    ("bool", True, True),
    ("bool", "true", True),
    ("bool", "True", True),
    ("bool", "yes", True),
    ("bool", "1", True),
    ("bool", 0, False),
    ("bool", "off", False),
    ("str", "relu", "relu"),
    ("str", 5, "5"),
    ("str", True, "true"),
    ("str", [1, 2], "[1,2]"),
    ("str", {"a": 1}, '{"a":1}'),
    ("path", "/data/x", "/data/x"),
    ("dict", {"a": 1}, {"a": 1}),
    ("dict", '{"a": 1}', {"a": 1}),
    ("list", [1, "a"], [1, "a"]),
    ("list", "[1, 2]", [1, 2]),
    ("List[int]", "[1, 2]", [1, 2]),
    ("List[int]", [1, "2"], [1, 2]),
    ("Dict[str, float]", {"a": "1"}, {"a": 1.0}),
    ("Optional[int]", "3", 3),
    ("any", "x", "x"),
    ("metric", "1.5", 1.5),
    ("date", "2020-01-01", datetime.date(2020, 1, 1)),
    ("git", {"url": "https://x/y.git"}, {"url": "https://x/y.git"}),
]

REJECTED = [
    ("int", "abc"),
    ("int", 5.5),
    ("int", ""),
    ("float", "abc"),
    ("float", "NaN"),
    ("bool", "maybe"),
    ("bool", 2),
    ("path", 5),
    ("dict", "a: 1"),  # Polyaxon reads JSON, not YAML
    ("dict", [1]),
    ("list", "a,b"),
    ("List[int]", ["x"]),
    ("git", {"url": "x", "branch": "main"}),
]


@pytest.mark.parametrize(("type_", "value", "expected"), ACCEPTED)
def test_accepted_values_parse_to_the_type(type_: str, value: Any, expected: Any) -> None:
    parsed = parse_value(parse_type(type_), value)

    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(("type_", "value"), REJECTED)
def test_rejected_values_say_what_and_to_which_type(type_: str, value: Any) -> None:
    with pytest.raises(ValueParseError) as caught:
        parse_value(parse_type(type_), value)

    assert str(caught.value).startswith("Could not parse value `")
    assert str(caught.value).endswith(f"` to `{type_}`")


def test_is_list_wraps_the_type() -> None:
    spec = parse_type("str", is_list=True)

    assert spec.text == "List[str]"
    assert parse_value(spec, ["a", 1]) == ["a", "1"]
    assert parse_value(spec, '["a", "b"]') == ["a", "b"]


@pytest.mark.parametrize("type_", ["foo", "List[foo]", "List[int", "Dict[str]", "int]", "list[int] x", ""])
def test_unknown_types_are_refused(type_: str) -> None:
    with pytest.raises(TypeSyntaxError):
        parse_type(type_)


def test_a_bad_value_in_a_run_is_reported_at_its_path_in_the_mapping() -> None:
    found = problems(operation([{"epochs": "5"}, {"epochs": "abc"}, {"epochs": 5.5}]))

    assert [(p.path, p.message) for p in found] == [
        ("matrix.values[1].epochs", "Could not parse value `abc` to `int`"),
        ("matrix.values[2].epochs", "Could not parse value `5.5` to `int`"),
    ]


def test_a_bad_op_param_is_reported_once_at_params() -> None:
    found = problems(operation([{}, {}, {}], params={"epochs": "many"}))

    assert [(p.path, p.message) for p in found] == [("params.epochs", "Could not parse value `many` to `int`")]


def test_an_input_without_a_type_takes_any_value() -> None:
    op = parse(operation([{"x": {"nested": [1]}}], component=component([{"name": "x"}])))

    assert expand_runs(op) == [{"x": {"nested": [1]}}]


def test_options_restrict_the_values() -> None:
    inputs: list[dict[str, Any]] = [
        {"name": "act", "type": "str", "options": ["relu", "tanh"]},
        {"name": "lr", "type": "float", "validation": {"gt": 0, "le": 1}},
    ]
    data = operation([{"act": "relu", "lr": 0.1}, {"act": "sigmoid", "lr": 2}], component=component(inputs))

    found = problems(data)

    assert [p.path for p in found] == ["matrix.values[1].act", "matrix.values[1].lr"]
    assert "not one of the possible values" in found[0].message
    assert found[1].message == "Value `2.0` must be less than or equal to `1.0`"


def test_a_default_that_does_not_parse_is_reported_on_the_input() -> None:
    found = problems(operation([{}], component=component([{"name": "n", "type": "int", "value": "x"}])))

    assert [(p.path, p.message) for p in found] == [("component.inputs[0].value", "Could not parse value `x` to `int`")]
