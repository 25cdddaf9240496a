"""Truncation policy: at each evaluation step, a run ranked among the worst `percent`% of the runs that
reached that step is stopped alone (Azure ML HyperDrive's TruncationSelectionPolicy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopRun
from bridge.polyaxon import V1MetricEarlyStopping


def truncation_rule(percent: float, *, optimization: str = "minimize", **policy: Any) -> V1MetricEarlyStopping:
    return V1MetricEarlyStopping.model_validate(
        {
            "kind": "metric_early_stopping",
            "metric": "m",
            "optimization": optimization,
            "policy": {"kind": "truncation", "percent": percent, "evaluationInterval": 1, **policy},
        }
    )


def feed(early: EarlyStopping, run_id: str, values: Sequence[float]) -> dict[int, StopRun]:
    """Report `values` of `m` at steps 1, 2, ...; return the runs stopped, by step."""
    stopped: dict[int, StopRun] = {}
    for step, value in enumerate(values, start=1):
        prune, verdict = early.record_metrics(run_id, step, {"m": value})
        assert verdict is None
        for p in prune:
            stopped[step] = p
    return stopped


def three_runs(early: EarlyStopping, values: Sequence[float] = (0.1, 0.2, 0.3)) -> None:
    for run_id, value in zip("abc", values, strict=True):
        assert feed(early, run_id, [value]) == {}


def test_the_worst_run_is_stopped() -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4)], total_runs=4)
    three_runs(early)

    assert feed(early, "d", [0.9]) == {
        1: StopRun("d", "truncation policy: best m 0.9 at step 1 is among the worst 25% (1 of 4 runs, minimize)")
    }


def test_a_run_outside_the_worst_percent_goes_on() -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4)], total_runs=4)
    three_runs(early)

    assert feed(early, "d", [0.25]) == {}


@pytest.mark.parametrize(("value", "stopped"), [(0.25, True), (0.15, False)])
def test_the_percent_sets_how_many_are_cut(value: float, stopped: bool) -> None:
    # 50% of 4 runs: the 2 worst. 0.25 is 3rd of 4 (cut), 0.15 is 2nd of 4 (kept).
    early = EarlyStopping([truncation_rule(50, minSamples=4)], total_runs=4)
    three_runs(early)

    assert bool(feed(early, "d", [value])) is stopped


def test_maximize_mirrors_minimize() -> None:
    early = EarlyStopping([truncation_rule(25, optimization="maximize", minSamples=4)], total_runs=5)
    three_runs(early, (0.9, 0.8, 0.7))

    assert feed(early, "d", [0.75]) == {}
    assert list(feed(early, "e", [0.1])) == [1]


def test_never_more_than_the_percent_is_cut() -> None:
    # 25% of 3 runs rounds down to none.
    early = EarlyStopping([truncation_rule(25)], total_runs=3)
    feed(early, "a", [0.1])
    feed(early, "b", [0.2])

    assert feed(early, "c", [0.9]) == {}


def test_ties_never_cut_identical_runs() -> None:
    early = EarlyStopping([truncation_rule(75)], total_runs=4)
    three_runs(early, (0.5, 0.5, 0.5))

    assert feed(early, "d", [0.5]) == {}


def test_runs_are_ranked_by_their_best_value_at_the_step() -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4)], total_runs=4)
    for run_id, values in {"a": [0.1, 0.1], "b": [0.2, 0.2], "c": [0.3, 0.3]}.items():
        feed(early, run_id, values)

    assert feed(early, "d", [0.25, 0.9]) == {}  # its best, 0.25, ranks 3rd of 4


@pytest.mark.parametrize(
    ("policy", "stopped_at"),
    [
        ({}, 1),
        ({"minInterval": 2}, 2),
        ({"evaluationInterval": 3}, 3),
        ({"evaluationInterval": 2, "minInterval": 3}, 4),
    ],
)
def test_min_interval_and_evaluation_interval_are_respected(policy: dict[str, Any], stopped_at: int) -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4, **policy)], total_runs=4)
    for run_id, value in zip("abc", (0.1, 0.2, 0.3), strict=True):
        feed(early, run_id, [value] * 5)

    assert list(feed(early, "d", [0.9] * 5)) == [stopped_at]


def test_min_samples_waits_for_enough_runs_at_the_step() -> None:
    early = EarlyStopping([truncation_rule(50, minSamples=4)], total_runs=4)
    feed(early, "a", [0.1])
    feed(early, "b", [0.2])

    assert feed(early, "d", [0.9]) == {}


def test_finished_runs_count_in_the_ranking() -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4)], total_runs=4)
    three_runs(early)
    for run_id in "abc":
        early.record_result(run_id, RunStatus.SUCCEEDED, {"m": 0.1})

    assert list(feed(early, "d", [0.9])) == [1]


def test_include_succeeded_false_leaves_succeeded_runs_out() -> None:
    early = EarlyStopping([truncation_rule(25, minSamples=4, includeSucceeded=False)], total_runs=5)
    three_runs(early)
    early.record_result("a", RunStatus.SUCCEEDED, {"m": 0.1})

    assert feed(early, "d", [0.9]) == {}  # b, c and d: 4 runs are needed, a does not count

    early.forget("d")
    feed(early, "e", [0.15])
    early.record_result("b", RunStatus.FAILED, {})
    early.record_result("c", RunStatus.STOPPED, {})
    assert list(feed(early, "d", [0.9])) == [1]  # b, c, e and d: runs that did not succeed still count
