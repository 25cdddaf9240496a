"""What the dash knows: the topics' messages folded into per-study aggregates and the last runs of each study.

Pure (no I/O, no clock of its own: every time comes from a message, or is passed in). Memory is bounded whatever
the topics hold: a study keeps counts, the best value of each metric, a throughput histogram, the objective values
of its last `history` results and its last `keep_runs` runs (each with at most `MAX_STEPS` progress points); the
board keeps at most `max_studies` studies (the least recently active go first), the last `MAX_LETTERS` dead
letters and per-minute counts of the last hour. Strings are kept as the topics hold them: escaping is the pages'
job (`bridge/dash/pages.py`), so a hostile name is shown, never interpreted.
"""

from __future__ import annotations

import binascii
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.contract.dead_letters import DeadLetter, excerpt_around
from bridge.contract.messages import OperationCreated, OperationFinished, OperationProgress
from bridge.contract.results import NO_OPERATION, ProgressEvent, RunResult, RunStatus, StopReason
from bridge.dash.objective import Objective, number, objective_of_operation

MAX_STEPS = 300  # progress points kept per run: a plot of more says no more
MAX_METRICS = 32  # metrics tracked per study (best values) and per history point
MAX_LETTERS = 500
MAX_OPEN_OPERATIONS = 1000  # per study: operations whose `finished` event never came (their replica died) age out
THROUGHPUT_BUCKET_S = 10
THROUGHPUT_WINDOW_S = 300
HOUR_S = 3600

STATUSES = ("running", "succeeded", "failed", "stopped", "skipped", "cached", "refused")
"""The states of the overview's columns: a result's status, except that a cached answer and a refused suggestion
(nothing ran) are columns of their own, and `running` comes from the operations' progress events."""


def status_of(result: RunResult) -> str:
    """The column a final result counts in."""
    if result.cached:
        return "cached"
    if result.status is RunStatus.FAILED and result.operation_id == NO_OPERATION:
        return "refused"
    return str(result.status)


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


@dataclass
class RunView:
    """One run: what its result says (once it came) and its intermediate values."""

    run_id: str
    study: str
    template: str | None = None
    operation_id: str = ""
    suggestion_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    attempt: int = 0
    duration_s: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    finished_at: float | None = None
    seq: int | None = None  # the result's place in the study's arrival order
    progress: deque[tuple[int | None, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=MAX_STEPS))
    steps_dropped: int = 0
    result: Mapping[str, Any] | None = None  # the result's JSON object as on the topic

    @property
    def early_stopped(self) -> bool:
        """Stopped or skipped by an early-stopping rule."""
        return bool(self.error) and self.error is not None and self.error.get("type") == StopReason.EARLY_STOPPED

    def value(self, objective: Objective | None) -> float | None:
        """Its number for `objective`, when it succeeded with one."""
        if objective is None or self.status != "succeeded":
            return None
        return number(self.outputs.get(objective.metric))


@dataclass
class Best:
    """The lowest and highest value a metric reached, and when each last moved (result seq, finish time)."""

    low: float
    low_seq: int
    low_at: float | None
    high: float
    high_seq: int
    high_at: float | None

    def of(self, objective: Objective) -> tuple[float, int, float | None]:
        """The best value for `objective`, the seq of the result that reached it, and when it finished."""
        if objective.maximize:
            return self.high, self.high_seq, self.high_at
        return self.low, self.low_seq, self.low_at


@dataclass(frozen=True)
class Point:
    """One succeeded result of a study's history: its arrival seq, run, and numeric outputs."""

    seq: int
    run_id: str
    outputs: Mapping[str, float]


class StudyView:
    """A study's aggregates and its last runs."""

    def __init__(self, name: str, *, keep_runs: int, history: int) -> None:
        self.name = name
        self.templates: list[str] = []
        self.counts: Counter[str] = Counter()
        self.results = 0
        self.last_at: float | None = None
        self.objective: Objective | None = None  # from the latest operation's metric early stopping
        self.best: dict[str, Best] = {}
        self.history: deque[Point] = deque(maxlen=history)
        self.runs: OrderedDict[str, RunView] = OrderedDict()
        self.open_operations: OrderedDict[str, int] = OrderedDict()  # operation id -> runs running
        self.operations = 0
        self._keep_runs = keep_runs
        self._buckets: Counter[int] = Counter()  # finish time // THROUGHPUT_BUCKET_S -> results

    @property
    def running(self) -> int:
        """Runs running now, as the open operations' last progress events count them."""
        return sum(self.open_operations.values())

    def run(self, run_id: str) -> RunView:
        """The run `run_id` (made, and the oldest dropped past `keep_runs`, when new)."""
        view = self.runs.get(run_id)
        if view is None:
            view = self.runs[run_id] = RunView(run_id=run_id, study=self.name)
            while len(self.runs) > self._keep_runs:
                self.runs.popitem(last=False)
        return view

    def throughput(self, now: float) -> float:
        """Results per minute over the last `THROUGHPUT_WINDOW_S`, by their finish time."""
        first = int((now - THROUGHPUT_WINDOW_S) // THROUGHPUT_BUCKET_S)
        total = sum(n for bucket, n in self._buckets.items() if bucket >= first)
        return total * 60.0 / THROUGHPUT_WINDOW_S

    def take_result(self, result: RunResult, data: Mapping[str, Any]) -> None:
        """Count a final result (a replay is a copy of one counted already: not counted again)."""
        if result.replayed:
            return
        self.results += 1
        seq = self.results
        status = status_of(result)
        self.counts[status] += 1
        finished = _ts(result.finished_at)
        if finished is not None:
            self.last_at = finished if self.last_at is None else max(self.last_at, finished)
            bucket = int(finished // THROUGHPUT_BUCKET_S)
            self._buckets[bucket] += 1
            oldest = bucket - THROUGHPUT_WINDOW_S // THROUGHPUT_BUCKET_S
            for old in [b for b in self._buckets if b < oldest]:
                del self._buckets[old]
        if result.template and result.template not in self.templates and len(self.templates) < 16:
            self.templates.append(result.template)
        run = self.run(result.run_id)
        run.template = result.template
        run.operation_id = result.operation_id
        run.suggestion_id = result.suggestion_id
        run.params = dict(result.params)
        run.status = status
        run.attempt = result.attempt
        run.duration_s = result.duration_s
        run.outputs = dict(result.outputs)
        run.error = None if result.error is None else result.error.model_dump()
        run.finished_at = finished
        run.seq = seq
        run.result = data
        if status in ("succeeded", "cached"):
            self._take_outputs(seq, result, finished)

    def _take_outputs(self, seq: int, result: RunResult, finished: float | None) -> None:
        numbers: dict[str, float] = {}
        for name, raw in result.outputs.items():
            value = number(raw)
            if value is None or len(numbers) >= MAX_METRICS:
                continue
            numbers[name] = value
            best = self.best.get(name)
            if best is None:
                if len(self.best) < MAX_METRICS:
                    self.best[name] = Best(value, seq, finished, value, seq, finished)
                continue
            if value < best.low:
                best.low, best.low_seq, best.low_at = value, seq, finished
            if value > best.high:
                best.high, best.high_seq, best.high_at = value, seq, finished
        if numbers:
            self.history.append(Point(seq, result.run_id, numbers))

    def take_progress(self, event: ProgressEvent) -> None:
        """An intermediate metric of a run."""
        run = self.run(event.run_id)
        run.operation_id = run.operation_id or event.operation_id
        run.template = run.template or event.template
        run.suggestion_id = run.suggestion_id or event.suggestion_id
        if len(run.progress) == run.progress.maxlen:
            run.steps_dropped += 1
        run.progress.append((event.step, dict(list(event.metrics.items())[:MAX_METRICS])))

    def take_operation(self, event: OperationCreated | OperationProgress | OperationFinished) -> None:
        """An operation event: its objective (created), how many of its runs run (progress), its end."""
        if event.template not in self.templates and len(self.templates) < 16:
            self.templates.append(event.template)
        if isinstance(event, OperationCreated):
            self.operations += 1
            self.objective = objective_of_operation(event.operation) or self.objective
            self.open_operations[event.operation_id] = 0
        elif isinstance(event, OperationProgress):
            self.open_operations[event.operation_id] = event.counts.running
        else:
            self.open_operations.pop(event.operation_id, None)
        while len(self.open_operations) > MAX_OPEN_OPERATIONS:
            self.open_operations.popitem(last=False)


@dataclass(frozen=True)
class LetterView:
    """A dead letter as the dash shows it: why, where from, and the original bytes around the field at fault."""

    reason: str
    field: str | None
    message: str
    source: str  # topic:partition@offset
    study: str
    at: float
    preview: str
    size: int | None
    truncated: bool


@dataclass
class PartitionView:
    """What came through one partition of the operations topic: the replica that owns the matching suggestions
    partition writes there (the events do not name the replica, so the partition stands for it)."""

    partition: int
    events: int = 0
    last_at: float | None = None
    studies: list[str] = field(default_factory=list)


def letter_view(letter: DeadLetter) -> LetterView:
    """The dash's view of one dead letter."""
    try:
        raw = letter.value_bytes() or b""
        key = (letter.key_bytes() or b"").decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        raw, key = b"", ""
    return LetterView(
        reason=letter.error.type,
        field=letter.error.field,
        message=letter.error.message,
        source=f"{letter.topic}:{letter.partition}@{letter.offset}",
        study=key[:200],
        at=letter.at.timestamp(),
        preview=excerpt_around(raw, letter.error.field),
        size=letter.value_size,
        truncated=letter.truncated,
    )


class Board:
    """Every study the topics tell of, the recent dead letters and the operations topic's partitions."""

    def __init__(
        self,
        *,
        keep_runs: int = 200,
        history: int | None = None,
        max_studies: int = 2000,
        template_objectives: Mapping[str, Objective] | None = None,
    ) -> None:
        self.keep_runs = keep_runs
        self.history_len = history if history is not None else max(1000, 5 * keep_runs)
        self._max_studies = max_studies
        self._template_objectives = dict(template_objectives or {})
        self.studies: OrderedDict[str, StudyView] = OrderedDict()  # least recently active first
        self.letters: deque[LetterView] = deque(maxlen=MAX_LETTERS)
        self._letter_minutes: Counter[tuple[int, str]] = Counter()
        self.partitions: dict[int, PartitionView] = {}
        self.unreadable: Counter[str] = Counter()  # topic -> records this bridge cannot read
        self.version = 0  # moves on every change: what the live page listens for

    def study(self, name: str) -> StudyView:
        """The study `name`, made when new (the least recently active dropped past `max_studies`)."""
        view = self.studies.get(name)
        if view is None:
            view = self.studies[name] = StudyView(name, keep_runs=self.keep_runs, history=self.history_len)
            while len(self.studies) > self._max_studies:
                self.studies.popitem(last=False)
        else:
            self.studies.move_to_end(name)
        return view

    def objective(self, study: StudyView, asked: Objective | None = None) -> Objective | None:
        """What `study` is judged by: `asked`, else its operations' rule, else its template's in the config."""
        if asked is not None:
            return asked
        if study.objective is not None:
            return study.objective
        for template in study.templates:
            if template in self._template_objectives:
                return self._template_objectives[template]
        return None

    def take_result(self, message: RunResult | ProgressEvent, data: Mapping[str, Any]) -> None:
        """A record of the results topic."""
        study = self.study(message.study or "")
        if isinstance(message, RunResult):
            study.take_result(message, data)
        else:
            study.take_progress(message)
        self.version += 1

    def take_operation(
        self, event: OperationCreated | OperationProgress | OperationFinished, *, partition: int
    ) -> None:
        """A record of the operations topic, read from `partition`."""
        self.study(event.study).take_operation(event)
        part = self.partitions.setdefault(partition, PartitionView(partition))
        part.events += 1
        at = event.at.timestamp()
        part.last_at = at if part.last_at is None else max(part.last_at, at)
        if event.study in part.studies:
            part.studies.remove(event.study)
        part.studies.append(event.study)
        del part.studies[:-5]
        self.version += 1

    def take_dead_letter(self, letter: DeadLetter) -> None:
        """A record of the dead-letter topic."""
        view = letter_view(letter)
        self.letters.append(view)
        self._letter_minutes[(int(view.at // 60), view.reason[:100])] += 1
        newest = max(minute for minute, _ in self._letter_minutes)
        for key in [k for k in self._letter_minutes if k[0] <= newest - HOUR_S // 60]:
            del self._letter_minutes[key]
        self.version += 1

    def take_unreadable(self, topic: str) -> None:
        """A record of `topic` this bridge cannot read: counted and shown as a number."""
        self.unreadable[topic] += 1
        self.version += 1

    def letters_by_reason(self, now: float) -> dict[str, int]:
        """Dead letters of the last hour (before `now`) by reason, most first."""
        since = int((now - HOUR_S) // 60)
        counts: Counter[str] = Counter()
        for (minute, reason), n in self._letter_minutes.items():
            if minute > since:
                counts[reason] += n
        return dict(counts.most_common())

    def find_run(self, run_id: str) -> RunView | None:
        """The run `run_id`, if one of the studies still keeps it."""
        for study in self.studies.values():
            if run_id in study.runs:
                return study.runs[run_id]
        return None

    def by_activity(self) -> Iterator[StudyView]:
        """The studies, the most recently active first."""
        return reversed(self.studies.values())
