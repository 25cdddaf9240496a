"""`failure_early_stopping {percent}`: the operation stops once failed / total runs >= percent / 100."""

from __future__ import annotations

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.early_stopping import EarlyStopping, StopOperation
from bridge.polyaxon import V1FailureEarlyStopping


def failure_rule(percent: float) -> V1FailureEarlyStopping:
    return V1FailureEarlyStopping.model_validate({"kind": "failure_early_stopping", "percent": percent})


def test_fires_when_the_failed_share_reaches_the_percent() -> None:
    early = EarlyStopping([failure_rule(30)], total_runs=10)

    assert early.record_result("r0", RunStatus.FAILED, {}) is None
    assert early.record_result("r1", RunStatus.FAILED, {}) is None
    verdict = early.record_result("r2", RunStatus.FAILED, {})

    assert isinstance(verdict, StopOperation)
    assert verdict.kind == "failure_early_stopping"
    assert verdict.reason == "3 of 10 runs failed (30%, the limit is 30%)"


def test_does_not_fire_below_the_percent() -> None:
    early = EarlyStopping([failure_rule(50)], total_runs=4)

    assert early.record_result("r0", RunStatus.FAILED, {}) is None
    assert early.record_result("r1", RunStatus.SUCCEEDED, {"loss": 0.1}) is None
    assert early.record_result("r2", RunStatus.SUCCEEDED, {"loss": 0.2}) is None
    assert early.verdict is None


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.STOPPED, RunStatus.SKIPPED])
def test_only_failures_count(status: RunStatus) -> None:
    early = EarlyStopping([failure_rule(50)], total_runs=2)

    assert early.record_result("r0", status, {}) is None
    assert early.record_result("r1", status, {}) is None


def test_total_is_every_run_of_the_operation_not_the_finished_ones() -> None:
    # 1 failure out of the 1 finished run is 100%, but out of the operation's 3 runs it is 33%.
    early = EarlyStopping([failure_rule(50)], total_runs=3)

    assert early.record_result("r0", RunStatus.FAILED, {}) is None
    assert early.record_result("r1", RunStatus.FAILED, {}) is not None


def test_a_fractional_percent_is_compared_exactly() -> None:
    early = EarlyStopping([failure_rule(33.3)], total_runs=3)

    assert early.record_result("r0", RunStatus.FAILED, {}) is not None


def test_a_run_reported_twice_counts_once() -> None:
    early = EarlyStopping([failure_rule(50)], total_runs=4)

    assert early.record_result("r0", RunStatus.FAILED, {}) is None
    assert early.record_result("r0", RunStatus.FAILED, {}) is None


def test_a_retried_run_no_longer_counts_as_failed() -> None:
    early = EarlyStopping([failure_rule(50)], total_runs=4)
    assert early.record_result("r0", RunStatus.FAILED, {}) is None

    early.forget("r0")  # the scheduler retries it
    assert early.record_result("r0", RunStatus.SUCCEEDED, {}) is None
    assert early.record_result("r1", RunStatus.FAILED, {}) is None

    assert early.record_result("r2", RunStatus.FAILED, {}) is not None


def test_the_verdict_is_given_once() -> None:
    early = EarlyStopping([failure_rule(25)], total_runs=4)
    first = early.record_result("r0", RunStatus.FAILED, {})

    assert first is not None
    assert early.record_result("r1", RunStatus.FAILED, {}) is None
    assert early.record_result("r2", RunStatus.STOPPED, {}) is None
    assert early.verdict == first


def test_the_strictest_of_several_rules_fires_first() -> None:
    early = EarlyStopping([failure_rule(90), failure_rule(20)], total_runs=5)

    verdict = early.record_result("r0", RunStatus.FAILED, {})

    assert verdict is not None
    assert "the limit is 20%" in verdict.reason


def test_enabled_reflects_the_rules() -> None:
    assert EarlyStopping([failure_rule(10)], total_runs=3).enabled
    assert not EarlyStopping([], total_runs=3).enabled
    assert not EarlyStopping([failure_rule(10)], total_runs=0).enabled
