"""The operation, its matrix and its component validate as in Polyaxon: unknown keys rejected at any depth."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.polyaxon import (
    V1Cache,
    V1DiffStoppingPolicy,
    V1FailureEarlyStopping,
    V1MedianStoppingPolicy,
    V1MetricEarlyStopping,
    V1Operation,
    V1Termination,
)
from tests.polyaxon.support import component, operation, parse, paths, problems


def test_an_unknown_top_level_key_is_an_unexpected_section() -> None:
    (problem,) = problems(operation([{"epochs": 1}], foo=1))

    assert (problem.path, problem.message) == ("foo", "Unexpected section `foo` in Polyaxonfile.")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"matrix": {"colour": "red"}}, "matrix.colour"),
        (
            {"matrix": {"earlyStopping": [{"kind": "failure_early_stopping", "percent": 5, "x": 1}]}},
            "matrix.earlyStopping[0].x",
        ),
        ({"cache": {"ttl": 5, "forever": True}}, "cache.forever"),
        ({"termination": {"maxRetries": 1, "retries": 2}}, "termination.retries"),
        ({"params": {"epochs": {"value": 1, "colour": "red"}}}, "params.epochs.colour"),
    ],
)
def test_unknown_keys_in_the_operation_are_rejected_where_they_are(where: dict[str, Any], expected: str) -> None:
    data = operation([{"epochs": 1}])
    for key, value in where.items():
        data[key] = {**data[key], **value} if key == "matrix" else value

    (problem,) = problems(data)

    assert problem.path == expected
    assert problem.message.startswith("Extra inputs are not permitted")


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"colour": "red"}, "component.run.container.colour"),
        ({"env": [{"name": "A", "value": "1", "secret": True}]}, "component.run.container.env[0].secret"),
    ],
)
def test_unknown_keys_in_an_inline_component_are_rejected_where_they_are(
    container: dict[str, Any], expected: str
) -> None:
    assert paths(operation([{}], component=component(**container))) == [expected]


def test_unknown_keys_in_inputs_and_run_are_rejected() -> None:
    comp = component([{"name": "a", "type": "int", "colour": "red"}])
    comp["run"]["colour"] = "red"

    assert paths(operation([{"a": 1}], component=comp)) == [
        "component.inputs[0].colour",
        "component.run.colour",
    ]


def test_concurrency_must_be_positive_and_is_coerced_from_text() -> None:
    assert paths(operation([{"epochs": 1}], matrix={"concurrency": 0})) == ["matrix.concurrency"]
    assert paths(operation([{"epochs": 1}], matrix={"concurrency": -2})) == ["matrix.concurrency"]

    op = parse(operation([{"epochs": 1}], matrix={"concurrency": "2"}))

    assert op.matrix is not None
    assert op.matrix.concurrency == 2


def test_the_matrix_needs_its_kind_and_values_must_be_dicts() -> None:
    data = operation([{"epochs": 1}])
    del data["matrix"]["kind"]
    assert paths(data) == ["matrix.kind"]

    assert paths(operation([{"epochs": 1}, 5])) == ["matrix.values[1]"]


@pytest.mark.parametrize("name", ["my op", "op/1", "ü"])
def test_names_follow_polyaxons_pattern(name: str) -> None:
    assert paths(operation([{"epochs": 1}], name=name)) == ["name"]


def test_names_with_dashes_and_underscores_are_fine() -> None:
    assert parse(operation([{"epochs": 1}], name="cnn-tpe_2")).name == "cnn-tpe_2"


def test_tags_may_be_a_comma_separated_string() -> None:
    assert parse(operation([{"epochs": 1}], tags="a, b")).tags == ["a", "b"]


def test_early_stopping_rules_parse_to_their_kinds() -> None:
    rules = [
        {"kind": "failure_early_stopping", "percent": 50},
        {"kind": "metric_early_stopping", "metric": "loss", "value": 0.1, "optimization": "minimize"},
        {
            "kind": "metric_early_stopping",
            "metric": "accuracy",
            "optimization": "MAXIMIZE",
            "policy": {"kind": "median", "evaluationInterval": 1, "minSamples": 3},
        },
        {
            "kind": "metric_early_stopping",
            "metric": "loss",
            "value": 0,
            "optimization": -1,
            "policy": {"kind": "diff", "percent": 10, "evaluationInterval": 2, "minInterval": 4},
        },
    ]
    op = parse(operation([{"epochs": 1}], matrix={"earlyStopping": rules}))

    assert op.matrix is not None
    failure, threshold, median, diff = op.matrix.early_stopping or []
    assert isinstance(failure, V1FailureEarlyStopping)
    assert failure.percent == 50
    assert isinstance(threshold, V1MetricEarlyStopping)
    assert (threshold.metric, threshold.value, threshold.optimization) == ("loss", 0.1, "minimize")
    assert isinstance(median, V1MetricEarlyStopping)
    assert median.optimization == "maximize"
    assert median.policy == V1MedianStoppingPolicy(evaluation_interval=1, min_samples=3)
    assert isinstance(diff, V1MetricEarlyStopping)
    assert diff.optimization == "minimize"
    assert diff.policy == V1DiffStoppingPolicy(percent=10, evaluation_interval=2, min_interval=4)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"kind": "failure_early_stopping", "percent": -1}, "matrix.earlyStopping[0].percent"),
        (
            {"kind": "metric_early_stopping", "value": 1, "optimization": "maximize"},
            "matrix.earlyStopping[0].metric",
        ),
        (
            {"kind": "metric_early_stopping", "metric": "m", "value": 1, "optimization": "up"},
            "matrix.earlyStopping[0].optimization",
        ),
        (
            {"kind": "metric_early_stopping", "metric": "m", "optimization": "maximize"},
            "matrix.earlyStopping[0]",
        ),
        (
            {
                "kind": "metric_early_stopping",
                "metric": "m",
                "optimization": "maximize",
                "policy": {"kind": "truncation", "percent": 5},
            },
            "matrix.earlyStopping[0].policy.evaluationInterval",
        ),
        ({"kind": "bayes_early_stopping"}, "matrix.earlyStopping[0]"),
    ],
)
def test_invalid_early_stopping_rules_are_rejected(rule: dict[str, Any], expected: str) -> None:
    assert paths(operation([{"epochs": 1}], matrix={"earlyStopping": [rule]})) == [expected]


def test_an_io_with_a_value_is_optional_unless_it_says_otherwise() -> None:
    op = parse(operation([{}], component=component([{"name": "n", "type": "int", "value": 3}])))
    assert op.component is not None
    assert op.component.inputs is not None
    assert op.component.inputs[0].is_optional is True

    found = problems(
        operation([{}], component=component([{"name": "n", "type": "int", "value": 3, "isOptional": False}]))
    )
    assert found[0].path == "component.inputs[0]"
    assert "is not optional and has default value `3`" in found[0].message


def test_only_bool_inputs_can_be_flags_and_names_must_be_free() -> None:
    comp = component([{"name": "verbose", "type": "str", "isFlag": True}, {"name": "params", "type": "int"}])

    assert paths(operation([{}], component=comp)) == [
        "component.inputs[0].isFlag",
        "component.inputs[1].name",
    ]


def test_io_names_are_declared_once() -> None:
    comp = component([{"name": "a", "type": "int"}], outputs=[{"name": "a", "type": "float"}])

    assert paths(operation([{"a": 1}], component=comp)) == ["component"]


def test_the_run_must_be_a_job_with_a_container() -> None:
    comp = component()
    del comp["run"]["container"]
    assert paths(operation([{}], component=comp)) == ["component.run.container"]

    comp = component()
    comp["run"]["kind"] = "service"
    assert paths(operation([{}], component=comp)) == ["component.run.kind"]


def test_command_and_args_are_text_or_lists_of_text() -> None:
    op = parse(operation([{}], component=component(command="python -c 'print(1)'", args=["--n", 5])))
    assert op.component is not None
    assert op.component.run.container.args == ["--n", "5"]

    assert paths(operation([{}], component=component(args={"n": 5}))) == ["component.run.container.args"]


def test_the_op_cache_and_termination_win_over_the_components_field_by_field() -> None:
    comp = component()
    comp["cache"] = {"ttl": 60, "io": ["lr"]}
    comp["termination"] = {"maxRetries": 3, "timeout": 100}
    op = parse(operation([{}], component=comp, cache={"disable": True}, termination={"timeout": 5}))

    assert op.effective_cache == V1Cache(disable=True, ttl=60, io=["lr"])
    assert op.effective_termination == V1Termination(max_retries=3, timeout=5)


def test_cache_and_termination_are_none_when_nobody_sets_them() -> None:
    op = parse(operation([{"epochs": 1}]))

    assert op.effective_cache is None
    assert op.effective_termination is None


def test_models_are_frozen_and_use_polyaxons_names_as_aliases() -> None:
    op = parse(operation([{"epochs": 1}], matrix={"concurrency": 2}, strictParams=True))

    with pytest.raises(ValueError, match="frozen"):
        op.name = "x"  # type: ignore[misc]  # the point: it is refused
    dumped = op.model_dump(by_alias=True, exclude_none=True)
    assert dumped["strictParams"] is True
    assert dumped["pathRef"] == "components/typed.yaml"
    assert V1Operation.model_validate(dumped) == op
