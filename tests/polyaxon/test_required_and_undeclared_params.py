"""Required inputs must be given; undeclared params are context params unless `strictParams` is on."""

from __future__ import annotations

from bridge.polyaxon import expand_runs
from tests.polyaxon.support import operation, parse, problems


def test_a_required_input_missing_from_a_run_is_an_error_at_that_run() -> None:
    found = problems(operation([{"epochs": 1}, {"dropout": 0.1}]))

    assert [(p.path, p.message) for p in found] == [
        ("matrix.values[1].epochs", "Input `epochs` is required, no param was passed.")
    ]


def test_an_explicit_null_for_a_required_input_is_missing() -> None:
    assert [p.path for p in problems(operation([{"epochs": None}]))] == ["matrix.values[0].epochs"]


def test_an_explicit_null_for_an_optional_input_takes_the_default() -> None:
    (run,) = expand_runs(parse(operation([{"epochs": 1, "dropout": None}])))

    assert run["dropout"] == 0.2


def test_a_required_input_given_by_the_op_params_is_enough() -> None:
    runs = expand_runs(parse(operation([{}, {}], params={"epochs": 9})))

    assert [r["epochs"] for r in runs] == [9, 9]


def test_undeclared_keys_are_kept_as_context_params() -> None:
    (run,) = expand_runs(parse(operation([{"epochs": 1, "note": "baseline"}], params={"team": "ml"})))

    assert run["note"] == "baseline"
    assert run["team"] == "ml"


def test_strict_params_rejects_undeclared_keys_in_runs_and_op_params() -> None:
    found = problems(operation([{"epochs": 1, "foo": 1}], params={"bar": 2}, strictParams=True))

    assert [p.path for p in found] == ["params.bar", "matrix.values[0].foo"]
    assert found[1].message.startswith("Received undeclared param `foo`")


def test_strict_params_lets_context_only_op_params_through() -> None:
    op = parse(operation([{"epochs": 1}], params={"bar": {"value": 2, "contextOnly": True}}, strictParams=True))

    assert expand_runs(op)[0]["bar"] == 2


def test_strict_params_on_the_component_applies_when_the_op_says_nothing() -> None:
    data = operation(
        [{"x": 1, "y": 2}],
        component={
            "kind": "component",
            "strictParams": True,
            "inputs": [{"name": "x", "type": "int"}],
            "run": {"kind": "job", "container": {"command": ["echo"]}},
        },
    )

    assert [p.path for p in problems(data)] == ["matrix.values[0].y"]
    assert expand_runs(parse({**data, "strictParams": False}))[0] == {"x": 1, "y": 2}


def test_context_names_cannot_be_used_as_params() -> None:
    found = problems(operation([{"epochs": 1, "globals": 1}]))

    assert [p.path for p in found] == ["matrix.values[0].globals"]


def test_an_output_passed_as_a_param_is_parsed_to_its_type() -> None:
    (run,) = expand_runs(parse(operation([{"epochs": 1, "loss": "0.5"}])))

    assert run["loss"] == 0.5
    assert "accuracy" not in run
