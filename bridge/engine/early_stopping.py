"""Early stopping of a mapping operation: Polyaxon's `earlyStopping` rules, evaluated for real.

Pure logic, no I/O: the scheduler feeds in every metric line and every final result, and gets back verdicts.
It acts on them itself (stop one run; or stop starting runs, stop the running ones and skip the rest).

The rules (Polyaxon's names; the policies mirror Azure ML HyperDrive's, which Polyaxon's docs paraphrase):

- `failure_early_stopping {percent}`: the operation stops once failed / total_runs >= percent / 100,
  total_runs being every run of the operation (Polyaxon's server rule). A run that will be retried is
  `forget`-ed and its failure no longer counts.
- `metric_early_stopping {metric, value, optimization}` without a policy: the operation stops once a run that
  succeeded (a cached result counts) has the final output `metric` >= value (maximize) or <= value (minimize).
  Polyaxon's server rule; a failed or stopped run's outputs are not a result the optimizer would keep.
- with a `policy`, on the intermediate values of `metric`, each run is judged alone and a loser is stopped
  alone; the operation goes on. If the rule also has a `value`, reaching it stops the whole operation, either
  as a succeeded run's final output or as any intermediate value (it has been reached, waiting adds nothing).

The policies (median, truncation, diff) and the grid of steps they judge on are in `bridge.engine.stopping_policies`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.contract.results import RunStatus
from bridge.engine.stopping_policies import MetricRule, fmt, number
from bridge.polyaxon import EarlyStoppingRule, V1FailureEarlyStopping, V1MetricEarlyStopping

__all__ = ["EarlyStopping", "StopOperation", "StopRun"]

_MAX_STEP = 2**63 - 1  # steps live in signed 64-bit arrays


@dataclass(frozen=True)
class StopRun:
    """Prune one running run; the operation goes on."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class StopOperation:
    """Stop the whole operation: start nothing more, stop the running runs, skip the rest."""

    kind: str  # "failure_early_stopping" | "metric_early_stopping"
    reason: str


class EarlyStopping:
    """The early-stopping verdicts of one operation, from its rules and the number of its runs.

    Feed it every metric line (`record_metrics`) and every final result (`record_result`). It returns at most
    one operation verdict in its life, and never the same run twice, and never a run it knows has ended.
    """

    def __init__(self, rules: Sequence[EarlyStoppingRule], total_runs: int) -> None:
        self._total_runs = total_runs
        self._failure_percents = [r.percent for r in rules if isinstance(r, V1FailureEarlyStopping)]
        self._metric_rules = [MetricRule(r) for r in rules if isinstance(r, V1MetricEarlyStopping)]
        # Only rules with a policy look at intermediate metrics (a bare threshold is on final outputs).
        self._watching = [r for r in self._metric_rules if r.policy is not None]
        self._statuses: dict[str, RunStatus] = {}
        self._pruned: set[str] = set()
        self._verdict: StopOperation | None = None

    @property
    def enabled(self) -> bool:
        """Whether any rule can ever give a verdict."""
        return bool(self._metric_rules) or (bool(self._failure_percents) and self._total_runs > 0)

    @property
    def verdict(self) -> StopOperation | None:
        """The operation verdict already given, if any; once given, nothing more is returned."""
        return self._verdict

    def record_metrics(
        self, run_id: str, step: int, metrics: Mapping[str, Any]
    ) -> tuple[list[StopRun], StopOperation | None]:
        """A run reported intermediate metrics at `step` (numbered by the scheduler if the run gave none)."""
        if self._verdict is not None or not self._watching:
            return [], None
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= _MAX_STEP:
            return [], None
        to_judge: list[tuple[MetricRule, int]] = []
        for rule in self._watching:
            value = number(metrics.get(rule.metric))
            if value is None:
                continue
            if rule.reaches(value):
                return [], self._stop_operation(
                    "metric_early_stopping",
                    f"run {run_id} reported {rule.metric} {fmt(value)} at step {step}, "
                    f"reaching the threshold {fmt(rule.value or 0.0)} ({rule.goal})",
                )
            point = rule.record(run_id, step, value)
            if point is not None:
                to_judge.append((rule, point))
        if not to_judge or run_id in self._pruned or run_id in self._statuses:
            return [], None
        for rule, point in to_judge:
            reason = rule.judge(run_id, point, self._statuses)
            if reason is not None:
                self._pruned.add(run_id)
                return [StopRun(run_id, reason)], None
        return [], None

    def record_result(self, run_id: str, status: RunStatus, outputs: Mapping[str, Any]) -> StopOperation | None:
        """A run ended (any status; a cached result counts as a succeeded run)."""
        self._statuses[run_id] = status
        if self._verdict is not None:
            return None
        if status == RunStatus.FAILED and self._failure_percents and self._total_runs > 0:
            failed = sum(1 for s in self._statuses.values() if s == RunStatus.FAILED)
            for percent in self._failure_percents:
                # failed / total >= percent / 100, without the float division
                if failed * 100 >= percent * self._total_runs:
                    return self._stop_operation(
                        "failure_early_stopping",
                        f"{failed} of {self._total_runs} runs failed "
                        f"({failed * 100 / self._total_runs:.3g}%, the limit is {percent:g}%)",
                    )
        if status == RunStatus.SUCCEEDED:
            for rule in self._metric_rules:
                value = number(outputs.get(rule.metric))
                if value is not None and rule.reaches(value):
                    return self._stop_operation(
                        "metric_early_stopping",
                        f"run {run_id} ended with {rule.metric} {fmt(value)}, reaching the threshold "
                        f"{fmt(rule.value or 0.0)} ({rule.goal})",
                    )
        return None

    def forget(self, run_id: str) -> None:
        """A run that will be retried: drop its partial history, its result and its pruning."""
        self._statuses.pop(run_id, None)
        self._pruned.discard(run_id)
        for rule in self._watching:
            rule.series.pop(run_id, None)

    def _stop_operation(self, kind: str, reason: str) -> StopOperation:
        self._verdict = StopOperation(kind=kind, reason=reason)
        return self._verdict
