"""The early-stopping policies of a `metric_early_stopping` rule: median, truncation and diff, on a grid of steps.

Pure logic, no I/O: `bridge.engine.early_stopping` feeds each rule the intermediate values of its metric and asks it to
judge a run when the run reaches a grid point; the rule answers with the reason to prune it, or None.

Policies are evaluated on a grid of steps: step g is an evaluation point when g >= 1, g >= minInterval and
g % evaluationInterval == 0 (HyperDrive's "every multiple of evaluation_interval that is >= delay_evaluation";
step 0, where the scheduler's own numbering starts, is the state before any progress and never judged). A run
is judged once per grid point, when it first reports a step at or past it (a run logging every 10 steps with
an interval of 1 is still judged), with its state *as of that grid point*: the last value it reported at a
step <= g. It is compared only with runs that also reached g, each with its state as of g: a young run meets
the older runs' past, never their later and better present (HyperDrive's fairness rule). Every run that
reached g counts, whatever it became since: running, finished, failed or pruned. Dropping pruned runs would
move the median up after every cut and prune in cascade. `minSamples` is how many runs (the judged one
included) must have reached g before anyone is judged there; it is at least 2, as a run cannot be compared
with nobody. A run that reaches a grid point first is not judged there, only at later points.

- median (HyperDrive's MedianStoppingPolicy, after Google Vizier): stop the run if its best value up to g is
  strictly worse than the median of the other runs' running averages (mean of all their values) up to g.
- truncation (HyperDrive's TruncationSelectionPolicy): rank the runs at g by best value up to g; the worst
  floor(n * percent / 100) of the n runs are cut, never more than `percent`. Ties favour the judged run, so
  identical runs are never cut. `includeSucceeded: false` leaves succeeded runs out of the ranking.
- diff (Polyaxon's DiffStopping, HyperDrive's BanditPolicy with a slack factor): stop the run if its best
  value up to g is worse than the best run's best value at g by more than `percent`% of that best value,
  |mine - best| > |best| * percent / 100. Polyaxon's wording ("worse than the best by the factor");
  HyperDrive's maximize example divides instead (mine * (1 + f) < best), which is within a hair for small f.

Memory is bounded by what the policies need: per rule with a policy and per run, a running best, sum and
count, and one (step, best, average) triple only where a report crosses the grid, in flat arrays (24 bytes
each). A run logging 10 metrics at every step with an evaluation interval of 100 keeps one triple per 100
steps. `forget` frees a run's history. A metric line costs O(rules); a grid crossing O(runs * log(triples)).
"""

from __future__ import annotations

import math
import statistics
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

from bridge.contract.results import RunStatus
from bridge.polyaxon import (
    V1DiffStoppingPolicy,
    V1MedianStoppingPolicy,
    V1MetricEarlyStopping,
    V1TruncationStoppingPolicy,
)

_MIN_COMPARED = 2  # a policy needs the judged run and at least one other at the same step


def number(value: object) -> float | None:
    """A finite float, or None for anything else (strings, bools, NaN, infinities, missing)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    finite = float(value)
    return finite if math.isfinite(finite) else None


def _maximizes(optimization: object) -> bool:
    # The model gives a plain string; an enum (Polyaxon's own V1Optimization) compares by its value.
    return str(getattr(optimization, "value", optimization)).lower() == "maximize"


def fmt(value: float) -> str:
    """A value as the verdicts' reasons print it."""
    return f"{value:.6g}"


@dataclass(frozen=True)
class _Grid:
    """The steps at which a policy judges runs."""

    delay: int
    interval: int

    def last_at_or_before(self, step: int) -> int | None:
        point = (step // self.interval) * self.interval
        return point if point >= max(self.delay, 1) else None


class _Series:
    """One run's values of one metric: running best, sum and count, plus its state at grid crossings."""

    __slots__ = ("avgs", "best", "bests", "count", "last_step", "maximize", "steps", "total")

    def __init__(self, maximize: bool) -> None:
        self.maximize = maximize
        self.count = 0
        self.total = 0.0
        self.best = 0.0
        self.last_step: int | None = None
        # (step, best, average) as of the last report at that step, kept only where the grid needs it.
        self.steps = array("q")
        self.bests = array("d")
        self.avgs = array("d")

    def add(self, step: int, value: float, grid: _Grid) -> int | None:
        """Record a value; return the grid point this report newly reached, if the run can be judged there."""
        last = self.last_step
        if last is not None and step <= last:
            # A repeated or late step: it counts toward best and average, but reaches no new grid point.
            self._update(value)
            if step == last and self.steps and self.steps[-1] == step:
                self.bests[-1], self.avgs[-1] = self.best, self.total / self.count
            return None
        if last is not None:
            between = grid.last_at_or_before(step - 1)
            if between is not None and between > last and not (self.steps and self.steps[-1] == last):
                self._snapshot(last)  # grid points between the two reports see the run as it was at `last`
        self._update(value)
        self.last_step = step
        reached = grid.last_at_or_before(step)
        if reached == step:
            self._snapshot(step)
        if reached is None or (reached < step and (last is None or reached <= last)):
            return None  # nothing new reached, or a first report past a point where the run had no value yet
        return reached

    def as_of(self, point: int) -> tuple[float, float] | None:
        """(best, running average) as of grid point `point`, or None if the run has not reached it."""
        if self.last_step is None or self.last_step < point:
            return None
        i = bisect_right(self.steps, point) - 1
        return (self.bests[i], self.avgs[i]) if i >= 0 else None

    def _update(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.count == 1 or (value > self.best if self.maximize else value < self.best):
            self.best = value

    def _snapshot(self, step: int) -> None:
        self.steps.append(step)
        self.bests.append(self.best)
        self.avgs.append(self.total / self.count)


_Policy = V1MedianStoppingPolicy | V1TruncationStoppingPolicy | V1DiffStoppingPolicy


class MetricRule:
    """One `metric_early_stopping` rule: its threshold and, with a policy, each run's history of it."""

    def __init__(self, rule: V1MetricEarlyStopping) -> None:
        self.metric = rule.metric
        self.maximize = _maximizes(rule.optimization)
        self.value = number(rule.value)
        self.policy: _Policy | None = rule.policy
        self.series: dict[str, _Series] = {}
        policy = rule.policy
        self.grid = _Grid(
            delay=(policy.min_interval or 0) if policy else 0,
            interval=max((policy.evaluation_interval or 1) if policy else 1, 1),
        )
        self.min_samples = max((policy.min_samples or 0) if policy else 0, _MIN_COMPARED)

    @property
    def goal(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b`?"""
        return a > b if self.maximize else a < b

    def reaches(self, value: float) -> bool:
        """Does `value` reach the rule's threshold?"""
        if self.value is None:
            return False
        return value >= self.value if self.maximize else value <= self.value

    def record(self, run_id: str, step: int, value: float) -> int | None:
        """Add an intermediate value; return the grid point at which the run is to be judged, if any."""
        series = self.series.get(run_id)
        if series is None:
            series = self.series[run_id] = _Series(self.maximize)
        return series.add(step, value, self.grid)

    def judge(self, run_id: str, point: int, statuses: Mapping[str, RunStatus]) -> str | None:
        """Apply the policy to `run_id` at grid point `point`: the reason to prune it, or None."""
        mine = self.series[run_id].as_of(point)
        if mine is None or self.policy is None:
            return None
        skip_succeeded = isinstance(self.policy, V1TruncationStoppingPolicy) and self.policy.include_succeeded is False
        others: list[tuple[float, float]] = []
        for other_id, series in self.series.items():
            if other_id == run_id or (skip_succeeded and statuses.get(other_id) == RunStatus.SUCCEEDED):
                continue
            state = series.as_of(point)
            if state is not None:
                others.append(state)
        if len(others) + 1 < self.min_samples:
            return None
        best = mine[0]
        if isinstance(self.policy, V1MedianStoppingPolicy):
            reason = self._median(best, point, others)
        elif isinstance(self.policy, V1TruncationStoppingPolicy):
            reason = self._truncation(best, point, others, self.policy.percent)
        else:
            reason = self._diff(best, point, others, self.policy.percent)
        return reason or None

    def _median(self, best: float, point: int, others: list[tuple[float, float]]) -> str | None:
        median = statistics.median(avg for _, avg in others)
        if not self.better(median, best):
            return None
        return (
            f"median policy: best {self.metric} {fmt(best)} at step {point} is worse than the median "
            f"{fmt(median)} of the running averages of {len(others)} other runs ({self.goal})"
        )

    def _truncation(self, best: float, point: int, others: list[tuple[float, float]], percent: float) -> str | None:
        n = len(others) + 1
        cut = math.floor(n * percent / 100 + 1e-9)  # the epsilon keeps 10 * 30 / 100 from falling to 2.99...
        # The judged run's most favourable rank: every other run as bad or worse than it stands below it.
        below = sum(1 for other_best, _ in others if not self.better(other_best, best))
        if below >= cut:
            return None
        return (
            f"truncation policy: best {self.metric} {fmt(best)} at step {point} is among the worst "
            f"{percent:g}% ({cut} of {n} runs, {self.goal})"
        )

    def _diff(self, best: float, point: int, others: list[tuple[float, float]], percent: float) -> str | None:
        leader = max((b for b, _ in others), key=lambda b: b if self.maximize else -b)
        if not self.better(leader, best):
            return None
        gap, allowed = abs(best - leader), abs(leader) * percent / 100
        if gap <= allowed:
            return None
        behind = f"{gap / abs(leader) * 100:.3g}%" if leader else fmt(gap)
        return (
            f"diff policy: best {self.metric} {fmt(best)} at step {point} is {behind} worse than "
            f"the best run's {fmt(leader)} (allowed {percent:g}%, {self.goal})"
        )
