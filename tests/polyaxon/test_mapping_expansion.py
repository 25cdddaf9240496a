"""A mapping expands to one dict of typed params per run, the op's params under each dict."""

from __future__ import annotations

import pytest

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import expand_runs, load_operation
from tests.polyaxon.support import FIXTURES, operation, parse

QUICK_START_DEFAULTS = {
    "conv1_size": 32,
    "conv2_size": 64,
    "dropout": 0.2,
    "hidden1_size": 500,
    "conv_activation": "relu",
    "dense_activation": "relu",
    "optimizer": "adam",
    "learning_rate": 0.001,
}


def test_the_seed_mapping_loads_and_expands_to_one_typed_run_per_dict() -> None:
    op = load_operation(FIXTURES / "mapping.yaml")

    assert op.component is not None
    assert op.component.name == "typed-experiment"
    assert op.path_ref == "components/typed.yaml"
    assert expand_runs(op) == [
        {
            **QUICK_START_DEFAULTS,
            "learning_rate": 0.001,
            "dropout": 0.25,
            "conv_activation": "relu",
            "epochs": 5,
        },
        {
            **QUICK_START_DEFAULTS,
            "learning_rate": 0.01,
            "dropout": 0.5,
            "conv_activation": "sigmoid",
            "epochs": 5,
        },
    ]


def test_optional_inputs_left_out_take_their_component_default() -> None:
    (run,) = expand_runs(parse(operation([{"epochs": 3}])))

    assert run == {**QUICK_START_DEFAULTS, "epochs": 3}


def test_an_optional_input_without_a_value_defaults_to_none() -> None:
    op = parse(
        operation(
            [{}],
            component={
                "kind": "component",
                "inputs": [{"name": "seed", "type": "int", "isOptional": True}],
                "run": {"kind": "job", "container": {"command": ["echo"]}},
            },
        )
    )

    assert expand_runs(op) == [{"seed": None}]


def test_op_params_apply_to_every_run_and_the_mapping_dict_wins() -> None:
    op = parse(operation([{"epochs": 2}, {"epochs": 3, "optimizer": "sgd"}], params={"optimizer": "rmsprop"}))

    runs = expand_runs(op)

    assert [(r["epochs"], r["optimizer"]) for r in runs] == [(2, "rmsprop"), (3, "sgd")]


def test_a_bare_param_value_and_the_full_form_mean_the_same() -> None:
    bare = parse(operation([{}], params={"epochs": 4}))
    full = parse(operation([{}], params={"epochs": {"value": 4}}))

    assert bare.params == full.params
    assert expand_runs(bare) == expand_runs(full)


def test_cli_overrides_are_raw_strings_parsed_like_any_value() -> None:
    op = load_operation(FIXTURES / "mapping.yaml", params={"hidden1_size": "256", "optimizer": "sgd"})

    runs = expand_runs(op)

    assert {(r["hidden1_size"], r["optimizer"]) for r in runs} == {(256, "sgd")}


def test_values_passed_in_replace_the_files_values() -> None:
    op = parse(operation([{"epochs": 1}]))

    runs = expand_runs(op, [{"epochs": "7", "dropout": "0.3"}, {"epochs": 8}])

    assert [(r["epochs"], r["dropout"]) for r in runs] == [(7, 0.3), (8, 0.2)]


def test_a_template_without_values_parses_but_does_not_expand_on_its_own() -> None:
    template = parse(operation(matrix={"concurrency": 2}))

    assert template.matrix is not None
    assert template.matrix.values is None
    with pytest.raises(PolyaxonfileError) as caught:
        expand_runs(template)
    assert caught.value.path == "matrix.values"
    assert len(expand_runs(template, [{"epochs": 1}, {"epochs": 2}])) == 2


def test_an_operation_without_a_matrix_is_one_run_of_its_params() -> None:
    data = operation(params={"epochs": 2})
    del data["matrix"]

    assert expand_runs(parse(data)) == [{**QUICK_START_DEFAULTS, "epochs": 2}]


def test_an_empty_mapping_is_no_runs_as_in_polyaxon() -> None:
    assert expand_runs(parse(operation([], params={"epochs": 3}))) == []


def test_a_config_template_may_leave_out_kind_and_version() -> None:
    template = parse({"pathRef": "components/typed.yaml", "matrix": {"kind": "mapping", "concurrency": 2}})

    assert template.kind == "operation"
    assert expand_runs(template, [{"epochs": 1}], values_path="suggestions")[0]["epochs"] == 1
