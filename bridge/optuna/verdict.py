"""What a trial's final result tells Optuna: its values, that it was pruned, or that it failed and why. Pure.

A result's status and outputs decide:

    succeeded, every metric a finite number in its outputs   -> COMPLETE with those values
    stopped or skipped (a stop asked, early stopping)          -> PRUNED
    failed (the run, or the bridge refused the suggestion),
    or succeeded without a metric                              -> FAIL, with the reason
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.contract.results import RunResult, RunStatus
from bridge.optuna.template_check import one_line
from bridge.polyaxon import did_you_mean


class Outcome(StrEnum):
    """How the trial ends."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    """A trial's end, and the user attributes that say what the bridge did (`bridge_run_id`, `bridge_status`,
    `bridge_error` when it did not succeed, ...)."""

    outcome: Outcome
    values: tuple[float, ...] = ()
    reason: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)


def attrs_of(result: RunResult) -> dict[str, Any]:
    """What a trial keeps of its result, as user attributes."""
    out: dict[str, Any] = {
        "bridge_run_id": result.run_id,
        "bridge_status": result.status.value,
        "bridge_attempt": result.attempt,
    }
    if result.cached:
        out["bridge_cached"] = True
    if result.replayed:
        out["bridge_replayed"] = True
    if result.warnings:  # e.g. a param the template does not declare: the run used that input's default
        out["bridge_warnings"] = list(result.warnings)
    return out


def error_of(result: RunResult) -> str:
    """Why a result did not succeed, in one line."""
    error = result.error
    return result.status.value if error is None else one_line(error.type, error.field, error.message)


def metric_values(outputs: Mapping[str, Any], metrics: Sequence[str]) -> tuple[float, ...] | str:
    """The value of each metric in a run's outputs, or why they cannot be had."""
    values = []
    for name in metrics:
        value = outputs.get(name)
        if value is None:
            shown = ", ".join(sorted(outputs)) or "none"
            return f"the run has no output `{name}` (its outputs: {shown}){did_you_mean(name, outputs)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"the run's output `{name}` is {value!r}, not a number"
        if not math.isfinite(value):
            return f"the run's output `{name}` is {value}, not a finite number"
        values.append(float(value))
    return tuple(values)


def verdict_of(result: RunResult, metrics: Sequence[str]) -> Verdict:
    """How the trial whose suggestion got `result` ends."""
    attrs = attrs_of(result)
    if result.status == RunStatus.SUCCEEDED:
        values = metric_values(result.outputs, metrics)
        if isinstance(values, str):
            return Verdict(Outcome.FAIL, reason=values, attrs={**attrs, "bridge_error": values})
        return Verdict(Outcome.COMPLETE, values=values, attrs=attrs)
    reason = error_of(result)
    if result.status in (RunStatus.STOPPED, RunStatus.SKIPPED):
        return Verdict(Outcome.PRUNED, reason=reason, attrs={**attrs, "bridge_error": reason})
    return Verdict(Outcome.FAIL, reason=reason, attrs={**attrs, "bridge_error": reason})
