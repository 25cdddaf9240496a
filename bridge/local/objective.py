"""What `bridge run` ranks its runs by: `--objective loss:min`, else the template's metric early stopping.

A mapping is usually a search, so the question after it is "which configuration won?". Polyaxon's own answer is
the metric an operation's `metric_early_stopping` watches (`metric`, `optimization: minimize|maximize`); the
bridge uses the first such rule when no objective is given. Runs that succeeded with a number for the metric
are ranked; every other run follows in mapping order, so the first row of the table is the best run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.contract.results import RunResult, RunStatus
from bridge.errors import InvalidInput
from bridge.polyaxon import V1MetricEarlyStopping, V1Operation

_DIRECTIONS = {"min": False, "minimize": False, "max": True, "maximize": True}


@dataclass(frozen=True)
class Objective:
    """A metric among a run's outputs, and whether more is better."""

    metric: str
    maximize: bool
    origin: str  # where it came from, for people: "--objective" or "metric early stopping"

    def __str__(self) -> str:
        return f"{self.metric}:{'max' if self.maximize else 'min'}"

    def value(self, result: RunResult) -> float | None:
        """The run's number for the metric, if it succeeded with one."""
        raw = result.outputs.get(self.metric)
        if result.status is not RunStatus.SUCCEEDED or isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        return float(raw) if math.isfinite(raw) else None

    def rank(self, results: Sequence[RunResult]) -> list[RunResult]:
        """Ranked runs first, best first (ties in mapping order), then the others in mapping order."""
        scored = [(v, r) for r in results if (v := self.value(r)) is not None]
        scored.sort(key=lambda pair: (-pair[0] if self.maximize else pair[0], pair[1].index))
        ranked = {id(r) for _, r in scored}
        return [r for _, r in scored] + sorted((r for r in results if id(r) not in ranked), key=lambda r: r.index)

    def best(self, results: Sequence[RunResult]) -> RunResult | None:
        """The run with the best number, or None when no run succeeded with one."""
        ranked = self.rank(results)
        return ranked[0] if ranked and self.value(ranked[0]) is not None else None


def parse_objective(text: str) -> Objective:
    """`loss:min`, `accuracy:max` (also `minimize`/`maximize`), or InvalidInput."""
    metric, sep, direction = text.rpartition(":")
    if not sep or not metric.strip() or direction.strip().lower() not in _DIRECTIONS:
        raise InvalidInput(f"--objective takes METRIC:min or METRIC:max, got `{text}`")
    return Objective(metric.strip(), _DIRECTIONS[direction.strip().lower()], "--objective")


def objective_of(op: V1Operation, given: str | None) -> Objective | None:
    """The objective to rank by: the one given, else the operation's first metric early stopping rule."""
    if given is not None:
        return parse_objective(given)
    rules = (op.matrix.early_stopping if op.matrix is not None else None) or []
    for rule in rules:
        if isinstance(rule, V1MetricEarlyStopping):
            return Objective(rule.metric, rule.optimization == "maximize", "metric early stopping")
    return None


def undeclared_metric(objective: Objective, op: V1Operation) -> str | None:
    """A warning when the component declares outputs and the objective's metric is not one of them."""
    outputs = [io.name for io in (op.component.outputs or [])] if op.component is not None else []
    if not outputs or objective.metric in outputs:
        return None
    return f"{objective.origin} {objective}: the component has no output `{objective.metric}` (outputs: " + (
        ", ".join(outputs) + "); runs can still report it with log_outputs"
    )
