"""Which output a study is judged by: `?objective=loss:min`, else its template's metric early stopping rule.

Read from plain data (an operation as the `created` event carries it, or a template of the config), never from a
validated Polyaxon model: the dash only looks, and a template it cannot parse still has runs worth showing. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_DIRECTIONS = {"min": False, "minimize": False, "max": True, "maximize": True}


@dataclass(frozen=True)
class Objective:
    """A metric among a run's outputs, and whether more is better."""

    metric: str
    maximize: bool

    def __str__(self) -> str:
        return f"{self.metric}:{'max' if self.maximize else 'min'}"

    def better(self, value: float, than: float | None) -> bool:
        """Whether `value` beats `than` (anything beats nothing)."""
        return than is None or (value > than if self.maximize else value < than)


def parse_objective(text: str | None) -> Objective | None:
    """`loss:min`, `accuracy:max` (or `minimize`/`maximize`); None for anything else, which the page says."""
    if not text:
        return None
    metric, sep, direction = text.rpartition(":")
    if not sep or not metric.strip() or direction.strip().lower() not in _DIRECTIONS:
        return None
    return Objective(metric.strip(), _DIRECTIONS[direction.strip().lower()])


def objective_of_operation(operation: Mapping[str, Any] | None) -> Objective | None:
    """The first `metric_early_stopping` rule of an operation's matrix (camelCase as on the wire, or snake_case
    as a template may be written), or None."""
    if not isinstance(operation, Mapping):
        return None
    matrix = operation.get("matrix")
    if not isinstance(matrix, Mapping):
        return None
    rules = matrix.get("earlyStopping", matrix.get("early_stopping"))
    if not isinstance(rules, list):
        return None
    for rule in rules:
        if not isinstance(rule, Mapping) or rule.get("kind") != "metric_early_stopping":
            continue
        metric = rule.get("metric")
        if isinstance(metric, str) and metric:
            return Objective(metric, str(rule.get("optimization", "")).lower() in ("maximize", "max"))
    return None


def number(value: Any) -> float | None:
    """`value` as a finite float when it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None
