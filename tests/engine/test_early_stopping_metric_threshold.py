"""`metric_early_stopping {metric, value, optimization}`: a run reaching the value stops the operation."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopOperation
from bridge.polyaxon import V1MetricEarlyStopping


def threshold(metric: str, value: float, optimization: str, **policy: Any) -> V1MetricEarlyStopping:
    spec: dict[str, Any] = {
        "kind": "metric_early_stopping",
        "metric": metric,
        "value": value,
        "optimization": optimization,
    }
    if policy:
        spec["policy"] = policy
    return V1MetricEarlyStopping.model_validate(spec)


# ---- without a policy: the final output of a succeeded run -------------------------------------------------


@pytest.mark.parametrize(
    ("optimization", "reached", "not_reached"),
    [("minimize", 0.05, 0.2), ("maximize", 0.95, 0.8)],
)
def test_a_succeeded_run_reaching_the_value_stops_the_operation(
    optimization: str, reached: float, not_reached: float
) -> None:
    metric = "loss" if optimization == "minimize" else "accuracy"
    value = 0.1 if optimization == "minimize" else 0.9
    early = EarlyStopping([threshold(metric, value, optimization)], total_runs=5)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {metric: not_reached}) is None
    verdict = early.record_result("r1", RunStatus.SUCCEEDED, {metric: reached})

    assert verdict == StopOperation(
        kind="metric_early_stopping",
        reason=f"run r1 ended with {metric} {reached:g}, reaching the threshold {value:g} ({optimization})",
    )


@pytest.mark.parametrize(("optimization", "value"), [("minimize", 0.1), ("maximize", 0.9)])
def test_the_value_itself_counts_as_reached(optimization: str, value: float) -> None:
    early = EarlyStopping([threshold("m", value, optimization)], total_runs=2)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {"m": value}) is not None


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.STOPPED, RunStatus.SKIPPED])
def test_only_a_succeeded_run_outputs_count(status: RunStatus) -> None:
    early = EarlyStopping([threshold("loss", 0.1, "minimize")], total_runs=2)

    assert early.record_result("r0", status, {"loss": 0.01}) is None


def test_intermediate_values_do_not_count_without_a_policy() -> None:
    early = EarlyStopping([threshold("loss", 0.1, "minimize")], total_runs=2)

    assert early.record_metrics("r0", 1, {"loss": 0.01}) == ([], None)
    assert early.record_result("r0", RunStatus.SUCCEEDED, {"loss": 0.5}) is None


@pytest.mark.parametrize("bad", ["0.01", None, math.nan, math.inf, -math.inf, True, [0.01], {"v": 0.01}])
def test_non_numeric_or_missing_outputs_are_ignored(bad: object) -> None:
    early = EarlyStopping([threshold("loss", 0.1, "minimize")], total_runs=2)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {"loss": bad}) is None
    assert early.record_result("r1", RunStatus.SUCCEEDED, {"accuracy": 0.01}) is None


def test_an_integer_output_is_a_number() -> None:
    early = EarlyStopping([threshold("errors", 0, "minimize")], total_runs=2)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {"errors": 0}) is not None


def test_the_verdict_is_given_once() -> None:
    early = EarlyStopping([threshold("loss", 0.1, "minimize")], total_runs=3)
    assert early.record_result("r0", RunStatus.SUCCEEDED, {"loss": 0.05}) is not None

    assert early.record_result("r1", RunStatus.SUCCEEDED, {"loss": 0.01}) is None
    assert early.record_metrics("r2", 1, {"loss": 0.01}) == ([], None)


def test_an_optimization_given_as_an_enum_compares_by_value() -> None:
    class Optimization(Enum):
        MAXIMIZE = "maximize"
        MINIMIZE = "minimize"

    rule = V1MetricEarlyStopping.model_construct(
        kind="metric_early_stopping",
        metric="accuracy",
        value=0.9,
        optimization=Optimization.MAXIMIZE,  # type: ignore[arg-type]  # an enum, not the model's string: on purpose
        policy=None,
    )
    early = EarlyStopping([rule], total_runs=2)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {"accuracy": 0.1}) is None
    assert early.record_result("r1", RunStatus.SUCCEEDED, {"accuracy": 0.95}) is not None


# ---- with a policy: an intermediate value reaching the value stops the whole operation too -----------------


@pytest.mark.parametrize(("optimization", "reached"), [("minimize", 0.09), ("maximize", 0.91)])
def test_with_a_policy_an_intermediate_value_reaching_it_stops_the_operation(optimization: str, reached: float) -> None:
    value = 0.1 if optimization == "minimize" else 0.9
    rule = threshold("m", value, optimization, kind="median", evaluationInterval=1, minSamples=3)
    early = EarlyStopping([rule], total_runs=3)
    assert early.record_metrics("r0", 1, {"m": 0.5}) == ([], None)

    prune, verdict = early.record_metrics("r0", 2, {"m": reached})

    assert prune == []
    assert verdict == StopOperation(
        kind="metric_early_stopping",
        reason=f"run r0 reported m {reached:g} at step 2, reaching the threshold {value:g} ({optimization})",
    )


def test_with_a_policy_the_final_output_still_counts() -> None:
    rule = threshold("loss", 0.1, "minimize", kind="diff", percent=10, evaluationInterval=1)
    early = EarlyStopping([rule], total_runs=3)
    assert early.record_metrics("r0", 1, {"loss": 0.5}) == ([], None)

    assert early.record_result("r0", RunStatus.SUCCEEDED, {"loss": 0.08}) is not None


def test_with_a_policy_and_no_value_nothing_stops_the_operation() -> None:
    rule = V1MetricEarlyStopping.model_validate(
        {
            "kind": "metric_early_stopping",
            "metric": "loss",
            "optimization": "minimize",
            "policy": {"kind": "median", "evaluationInterval": 1},
        }
    )
    early = EarlyStopping([rule], total_runs=2)

    assert early.record_metrics("r0", 1, {"loss": -1e9}) == ([], None)
    assert early.record_result("r0", RunStatus.SUCCEEDED, {"loss": -1e9}) is None
    assert early.enabled
