"""Diff policy: a run whose best value at a step is worse than the best run's at that step by more than
`percent`% of it is stopped alone (Polyaxon's DiffStopping; HyperDrive's BanditPolicy with a slack factor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopRun
from bridge.polyaxon import V1MetricEarlyStopping


def diff_rule(percent: float, metric: str, optimization: str, **policy: Any) -> V1MetricEarlyStopping:
    return V1MetricEarlyStopping.model_validate(
        {
            "kind": "metric_early_stopping",
            "metric": metric,
            "optimization": optimization,
            "policy": {"kind": "diff", "percent": percent, "evaluationInterval": 1, **policy},
        }
    )


def feed(early: EarlyStopping, run_id: str, metric: str, values: Sequence[float]) -> dict[int, StopRun]:
    """Report `values` at steps 1, 2, ...; return the runs stopped, by step."""
    stopped: dict[int, StopRun] = {}
    for step, value in enumerate(values, start=1):
        prune, verdict = early.record_metrics(run_id, step, {metric: value})
        assert verdict is None
        for p in prune:
            stopped[step] = p
    return stopped


def test_maximize_stops_a_run_too_far_below_the_best() -> None:
    early = EarlyStopping([diff_rule(20, "accuracy", "maximize")], total_runs=3)
    feed(early, "a", "accuracy", [0.8])

    assert feed(early, "b", "accuracy", [0.7]) == {}  # 12.5% below: within 20%
    assert feed(early, "c", "accuracy", [0.6]) == {
        1: StopRun(
            "c",
            "diff policy: best accuracy 0.6 at step 1 is 25% worse than the best run's 0.8 (allowed 20%, maximize)",
        )
    }


def test_minimize_stops_a_run_too_far_above_the_best() -> None:
    early = EarlyStopping([diff_rule(20, "loss", "minimize")], total_runs=3)
    feed(early, "a", "loss", [0.5])

    assert feed(early, "b", "loss", [0.59]) == {}  # 18% above
    stopped = feed(early, "c", "loss", [0.65])  # 30% above
    assert list(stopped) == [1]
    assert "is 30% worse than the best run's 0.5" in stopped[1].reason


@pytest.mark.parametrize("optimization", ["minimize", "maximize"])
def test_the_best_run_is_never_stopped(optimization: str) -> None:
    early = EarlyStopping([diff_rule(0, "m", optimization)], total_runs=2)
    feed(early, "a", "m", [0.5])

    assert feed(early, "b", "m", [0.5]) == {}  # a tie is not worse
    best = 0.1 if optimization == "minimize" else 0.9
    assert feed(early, "c", "m", [best]) == {}


def test_negative_values_use_the_size_of_the_best() -> None:
    early = EarlyStopping([diff_rule(10, "reward", "maximize")], total_runs=3)
    feed(early, "a", "reward", [-1.0])

    assert feed(early, "b", "reward", [-1.05]) == {}
    assert list(feed(early, "c", "reward", [-1.2])) == [1]


def test_a_best_of_zero_allows_no_gap() -> None:
    early = EarlyStopping([diff_rule(50, "loss", "minimize")], total_runs=2)
    feed(early, "a", "loss", [0.0])

    stopped = feed(early, "b", "loss", [0.01])
    assert "is 0.01 worse than the best run's 0" in stopped[1].reason


def test_the_run_counts_with_its_best_value_so_far() -> None:
    early = EarlyStopping([diff_rule(20, "accuracy", "maximize")], total_runs=2)
    feed(early, "a", "accuracy", [0.8, 0.8])

    assert feed(early, "b", "accuracy", [0.75, 0.1]) == {}


def test_the_best_run_is_the_best_at_the_same_step() -> None:
    early = EarlyStopping([diff_rule(20, "accuracy", "maximize")], total_runs=2)
    feed(early, "a", "accuracy", [0.5, 0.6, 0.9])
    early.record_result("a", RunStatus.SUCCEEDED, {"accuracy": 0.9})

    # At steps 1 and 2 b is within 20% of a's 0.5 and 0.6, though far from a's final 0.9; at step 3 it is not.
    assert list(feed(early, "b", "accuracy", [0.45, 0.55, 0.6])) == [3]


@pytest.mark.parametrize(
    ("policy", "stopped_at"),
    [
        ({}, 1),
        ({"minInterval": 4}, 4),
        ({"evaluationInterval": 3}, 3),
        ({"minSamples": 3}, None),
    ],
)
def test_min_interval_evaluation_interval_and_min_samples_are_respected(
    policy: dict[str, Any], stopped_at: int | None
) -> None:
    early = EarlyStopping([diff_rule(10, "loss", "minimize", **policy)], total_runs=2)
    feed(early, "a", "loss", [0.5] * 5)

    stopped = feed(early, "b", "loss", [0.9] * 5)

    assert list(stopped) == ([] if stopped_at is None else [stopped_at])
