"""Median policy: a run whose best value up to step N is worse than the median of the other runs' running
averages up to step N is stopped alone (Azure ML HyperDrive's MedianStoppingPolicy, after Google Vizier)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopRun
from bridge.polyaxon import V1MetricEarlyStopping


def median_rule(*, metric: str = "loss", optimization: str = "minimize", **policy: Any) -> V1MetricEarlyStopping:
    return V1MetricEarlyStopping.model_validate(
        {
            "kind": "metric_early_stopping",
            "metric": metric,
            "optimization": optimization,
            "policy": {"kind": "median", "evaluationInterval": 1, **policy},
        }
    )


def feed(early: EarlyStopping, run_id: str, values: Sequence[float], metric: str = "loss") -> dict[int, StopRun]:
    """Report `values` at steps 1, 2, ...; return the runs stopped, by step."""
    stopped: dict[int, StopRun] = {}
    for step, value in enumerate(values, start=1):
        prune, verdict = early.record_metrics(run_id, step, {metric: value})
        assert verdict is None
        for p in prune:
            stopped[step] = p
    return stopped


def test_a_run_worse_than_the_median_is_stopped() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    assert feed(early, "a", [0.5, 0.4, 0.3]) == {}
    assert feed(early, "b", [0.6, 0.5, 0.4]) == {}

    # Step 1: 0.55 equals the median of 0.5 and 0.6, not worse. Step 2: best 0.55 > median(0.45, 0.55) = 0.5.
    stopped = feed(early, "c", [0.55, 0.9, 0.9])

    assert stopped == {
        2: StopRun(
            "c",
            "median policy: best loss 0.55 at step 2 is worse than the median 0.5 "
            "of the running averages of 2 other runs (minimize)",
        )
    }


def test_maximize_mirrors_minimize() -> None:
    early = EarlyStopping([median_rule(metric="accuracy", optimization="maximize", minSamples=3)], total_runs=3)
    feed(early, "a", [0.5, 0.6, 0.7], metric="accuracy")
    feed(early, "b", [0.4, 0.5, 0.6], metric="accuracy")

    stopped = feed(early, "c", [0.45, 0.1, 0.1], metric="accuracy")

    assert list(stopped) == [2]
    assert "best accuracy 0.45 at step 2 is worse than the median 0.5" in stopped[2].reason


@pytest.mark.parametrize("optimization", ["minimize", "maximize"])
def test_a_run_at_or_above_the_median_goes_on(optimization: str) -> None:
    sign = 1 if optimization == "minimize" else -1
    early = EarlyStopping([median_rule(optimization=optimization, minSamples=3)], total_runs=3)
    feed(early, "a", [sign * v for v in (0.5, 0.4, 0.3)])
    feed(early, "b", [sign * v for v in (0.6, 0.5, 0.4)])

    assert feed(early, "c", [sign * v for v in (0.55, 0.45, 0.35)]) == {}


def test_the_run_is_judged_by_its_best_value_not_its_last() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    feed(early, "a", [0.5, 0.4, 0.3])
    feed(early, "b", [0.6, 0.5, 0.4])

    assert feed(early, "c", [0.4, 0.9, 0.9]) == {}


def test_the_others_count_with_their_running_average_not_their_last_value() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    feed(early, "a", [0.9, 0.1])
    feed(early, "b", [0.9, 0.1])

    # Their running averages at step 2 are 0.5; their last values (0.1) would have stopped c.
    assert feed(early, "c", [0.3, 0.3]) == {}


@pytest.mark.parametrize(
    ("policy", "stopped_at"),
    [
        ({}, 1),
        ({"minInterval": 3}, 3),
        ({"evaluationInterval": 2}, 2),
        ({"evaluationInterval": 2, "minInterval": 3}, 4),
        ({"evaluationInterval": 5, "minInterval": 7}, None),
    ],
)
def test_min_interval_and_evaluation_interval_are_respected(policy: dict[str, Any], stopped_at: int | None) -> None:
    early = EarlyStopping([median_rule(minSamples=3, **policy)], total_runs=3)
    feed(early, "a", [0.5, 0.4, 0.3, 0.2, 0.1, 0.1])
    feed(early, "b", [0.5, 0.4, 0.3, 0.2, 0.1, 0.1])

    stopped = feed(early, "c", [0.9] * 6)

    assert list(stopped) == ([] if stopped_at is None else [stopped_at])


def test_min_samples_waits_for_enough_runs_at_the_step() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    feed(early, "a", [0.5, 0.4, 0.3, 0.2])

    assert feed(early, "c", [0.9, 0.9, 0.9]) == {}  # only 2 runs reached each step

    feed(early, "b", [0.5, 0.4, 0.3, 0.2])
    assert list(feed(early, "c", [0.9, 0.9, 0.9, 0.9])) == [4]  # steps 1-3 were already judged


def test_without_min_samples_one_other_run_is_enough() -> None:
    early = EarlyStopping([median_rule()], total_runs=2)
    feed(early, "a", [0.5])

    assert list(feed(early, "c", [0.9])) == [1]


def test_a_finished_run_history_still_counts_toward_the_median() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    for run_id in ("a", "b"):
        feed(early, run_id, [0.5, 0.4, 0.3, 0.2, 0.1])
        assert early.record_result(run_id, RunStatus.SUCCEEDED, {"loss": 0.1}) is None

    assert list(feed(early, "c", [0.9])) == [1]


def test_a_young_run_meets_the_older_runs_past_not_their_final_values() -> None:
    early = EarlyStopping([median_rule(minSamples=3)], total_runs=3)
    for run_id in ("a", "b"):
        feed(early, run_id, [0.9, 0.5, 0.3, 0.2, 0.1])
        early.record_result(run_id, RunStatus.SUCCEEDED, {"loss": 0.1})

    # At step 1 the others averaged 0.9: c's 0.85 is fine, though far from their final 0.1.
    assert feed(early, "c", [0.85]) == {}
