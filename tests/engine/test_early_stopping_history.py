"""What all policies share: the evaluation grid, the runs returned, retries, bad input, bounded memory."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopRun
from bridge.polyaxon import V1MetricEarlyStopping


def rule(kind: str, value: float | None = None, **policy: Any) -> V1MetricEarlyStopping:
    return V1MetricEarlyStopping.model_validate(
        {
            "kind": "metric_early_stopping",
            "metric": "loss",
            "value": value,
            "optimization": "minimize",
            "policy": {"kind": kind, "evaluationInterval": 1, **policy},
        }
    )


def feed(early: EarlyStopping, run_id: str, points: Sequence[tuple[int, float]]) -> dict[int, StopRun]:
    """Report (step, loss) points; return the runs stopped, by step."""
    stopped: dict[int, StopRun] = {}
    for step, value in points:
        prune, verdict = early.record_metrics(run_id, step, {"loss": value})
        assert verdict is None
        for p in prune:
            stopped[step] = p
    return stopped


def steps(values: Sequence[float], start: int = 1, every: int = 1) -> list[tuple[int, float]]:
    return [(start + i * every, v) for i, v in enumerate(values)]


# ---- the grid ---------------------------------------------------------------------------------------------


def test_step_zero_is_never_judged() -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1, 0.1], start=0))

    assert list(feed(early, "b", steps([0.9, 0.9], start=0))) == [1]


def test_a_run_reporting_past_grid_points_is_judged_at_the_last_one_it_passed() -> None:
    early = EarlyStopping([rule("median", evaluationInterval=2)], total_runs=2)
    feed(early, "a", steps([1 / k for k in range(1, 11)]))  # running averages: 0.75 at step 2, 0.52 at step 4

    # b reports at odd steps only: step 3 passes grid point 2, step 5 grid point 4, where b stood as it was at
    # step 3 (its 0.05 at step 5 comes after).
    stopped = feed(early, "b", [(1, 0.7), (3, 0.6), (5, 0.05)])

    assert list(stopped) == [5]
    assert "best loss 0.6 at step 4 is worse than the median 0.520833" in stopped[5].reason


def test_runs_logging_every_ten_steps_meet_at_each_grid_point() -> None:
    early = EarlyStopping([rule("median", minInterval=10)], total_runs=2)
    feed(early, "a", steps([0.1] * 5, start=10, every=10))

    stopped = feed(early, "b", steps([0.9] * 5, start=10, every=10))

    assert list(stopped) == [10]


def test_a_run_that_has_not_reached_the_step_does_not_count() -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1, 0.1]))

    assert feed(early, "b", [(3, 0.9)]) == {}  # a never reported at or past step 3


def test_a_repeated_or_late_step_is_not_judged_again() -> None:
    early = EarlyStopping([rule("median", minSamples=3)], total_runs=3)
    feed(early, "a", steps([0.1, 0.1]))
    feed(early, "c", steps([0.3, 0.3]))

    assert feed(early, "b", [(2, 0.2), (2, 0.9), (1, 0.9)]) == {}


# ---- which runs are returned ----------------------------------------------------------------------------


def test_a_run_is_returned_once() -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1] * 5))

    assert list(feed(early, "b", steps([0.9] * 5))) == [1]


def test_two_rules_that_would_both_stop_a_run_return_it_once() -> None:
    early = EarlyStopping([rule("median"), rule("truncation", percent=50)], total_runs=2)
    feed(early, "a", steps([0.1]))

    prune, verdict = early.record_metrics("b", 1, {"loss": 0.9})

    assert [p.run_id for p in prune] == ["b"]
    assert prune[0].reason.startswith("median policy")
    assert verdict is None


def test_a_finished_run_is_never_returned() -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1] * 3))
    early.record_result("b", RunStatus.SUCCEEDED, {})

    # Its last metric lines are read after it ended: they count, but it is not stopped.
    assert feed(early, "b", steps([0.9] * 3)) == {}


def test_a_stopped_run_still_counts_so_cuts_do_not_cascade() -> None:
    early = EarlyStopping([rule("median", minSamples=3)], total_runs=4)
    feed(early, "a", steps([0.1]))
    feed(early, "b", steps([0.2]))
    assert list(feed(early, "c", steps([0.9]))) == [1]
    early.record_result("c", RunStatus.STOPPED, {})

    # median(0.1, 0.2, 0.9) = 0.2; without c's history it would be 0.15 and d would be stopped.
    assert feed(early, "d", steps([0.18])) == {}


def test_a_retried_run_starts_afresh() -> None:
    early = EarlyStopping([rule("median", minSamples=3)], total_runs=3)
    feed(early, "a", steps([0.1, 0.1]))
    feed(early, "b", steps([0.1, 0.1]))
    assert list(feed(early, "c", steps([0.9, 0.9]))) == [1]

    early.forget("c")

    assert list(feed(early, "c", steps([0.9, 0.9]))) == [1]


def test_a_forgotten_run_history_no_longer_counts() -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1]))
    early.forget("a")

    assert feed(early, "b", steps([0.9])) == {}


def test_nothing_is_returned_after_the_operation_verdict() -> None:
    early = EarlyStopping([rule("median", value=0.05)], total_runs=3)
    feed(early, "a", steps([0.1]))
    _, verdict = early.record_metrics("a", 2, {"loss": 0.01})
    assert verdict is not None

    assert early.record_metrics("b", 1, {"loss": 0.9}) == ([], None)


# ---- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0.5", None, math.nan, math.inf, True, [0.5]])
def test_non_numeric_values_are_ignored(bad: object) -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1, 0.1]))

    assert early.record_metrics("b", 1, {"loss": bad}) == ([], None)
    assert early.record_metrics("b", 1, {"accuracy": 0.9}) == ([], None)
    assert early.record_metrics("b", 1, {}) == ([], None)
    assert list(feed(early, "b", [(2, 0.9)])) == [2]  # b's first real value is at step 2


@pytest.mark.parametrize("bad_step", [-1, True, 2**64])
def test_unusable_steps_are_ignored(bad_step: Any) -> None:
    early = EarlyStopping([rule("median")], total_runs=2)
    feed(early, "a", steps([0.1]))

    assert early.record_metrics("b", bad_step, {"loss": 0.9}) == ([], None)


def test_metrics_of_no_rule_and_an_empty_rule_list_cost_nothing() -> None:
    early = EarlyStopping([], total_runs=2)

    assert not early.enabled
    assert early.record_metrics("a", 1, {"loss": 0.1}) == ([], None)
    assert early.record_result("a", RunStatus.FAILED, {"loss": 0.1}) is None


# ---- bounded memory --------------------------------------------------------------------------------------


def _memory_after(total_steps: int) -> int:
    early = EarlyStopping([rule("median", evaluationInterval=100, minInterval=100)], total_runs=3)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for step in range(1, total_steps + 1):
            for run_id in ("a", "b", "c"):
                early.record_metrics(run_id, step, {"loss": 1 / step, "accuracy": 0.5, "lr": 0.01, "epoch": 1.0})
        return tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()


def test_memory_grows_with_grid_points_not_with_metric_lines() -> None:
    small, large = _memory_after(1_000), _memory_after(20_000)

    # 3 runs x 200 grid points x 24 bytes = 14 KB at 20k steps; every line kept would be several MB.
    assert large < 64_000
    assert large - small < 32_000
