"""The history checker: what the bridge did, from the outside, held to its exactly-once contract.

A history is what a test can see once the replicas have stopped: the final results on the results topic and the
records of the ledger topic (both read_committed, with their record timestamps), the executions the runs
recorded themselves (`Execution`: one per process, with its attempt number and start), the suggestions of
readable messages the test sent (with when each was first on the suggestions topic) and the faults it caused.
`problems_of` asserts, per run:
- one final result per run id, and per (study, suggestion id); replayed copies aside;
- every suggestion of a readable message answered, and no answer for one never sent;
- attempt numbers strictly increasing from one execution to the next: no attempt executed twice;
- no execution whose attempt the ledger never recorded (a `dispatched` record with that attempt or a later one,
  or the grant of attempt 1: `dispatched` with attempt 0);
- no result before its suggestion;
- the result's `attempt` that of the last execution, and attempt numbers skipped or runs executed again only
  across a fault (`Fault`: a kill -9, a pause, a partition that moved).
Pure: the fault tests gather the history (tests/faults/harness.py), tests/faults/test_history_checker.py proves
each rule on made-up histories.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

RESULT_SCHEMA = "bridge.result/v1"


class TopicRecord(Protocol):
    """A record as read back from a topic (aiokafka's `ConsumerRecord` has these)."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int: ...


@dataclass(frozen=True)
class Execution:
    """One process of a run, as the run recorded itself (tests/scripts_job.py)."""

    name: str  # the suggestion id: the job's `name` param
    attempt: int
    start: float
    end: float | None
    outputs_dir: str

    def ran_in(self, workdir: Path) -> bool:
        return Path(self.outputs_dir).is_relative_to(workdir)


@dataclass(frozen=True)
class Fault:
    """When a fault happened; `workdir`: the replica it hit (None: anything in flight may run again)."""

    at: float
    what: str
    workdir: Path | None = None


@dataclass
class Counts:
    results: int = 0
    distinct_runs: int = 0
    duplicates: int = 0
    missing: int = 0
    reexecutions: int = 0
    dead_letters: int = 0
    cached: int = 0
    executions: int = 0
    unrecorded_attempts: int = 0  # attempt numbers with no execution: dispatched, then cut down by a fault
    statuses: dict[str, int] = field(default_factory=dict)

    def line(self, label: str, faults: int = 0) -> str:
        return (
            f"faults[{label}]: results={self.results} distinct_runs={self.distinct_runs} "
            f"duplicates={self.duplicates} missing={self.missing} reexecutions={self.reexecutions} "
            f"dead_letters={self.dead_letters} cached={self.cached} executions={self.executions} "
            f"unrecorded_attempts={self.unrecorded_attempts} "
            f"faults={faults} statuses={dict(sorted(self.statuses.items()))}"
        )


def _json(value: bytes | None) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError, TypeError, RecursionError):  # hostile records are on the topics too
        body = json.loads(value or b"")
        return body if isinstance(body, dict) else None
    return None


@dataclass
class History:
    """Everything a fault test saw of one workload."""

    results: list[dict[str, Any]]  # final results, each with `_at`: its record's timestamp, in seconds
    ledger: list[dict[str, Any]]  # the ledger's run records (owner markers left out)
    executions: list[Execution]
    wanted: set[tuple[str, str]]  # (study, suggestion id) of every suggestion of a readable message sent
    suggested_at: dict[tuple[str, str], float] = field(default_factory=dict)  # first on the suggestions topic
    dead_letters: int = 0

    @classmethod
    def of(
        cls,
        *,
        results: Iterable[TopicRecord],
        ledger: Iterable[TopicRecord],
        executions: Iterable[Execution],
        wanted: set[tuple[str, str]],
        suggestions: Iterable[TopicRecord] = (),
        dead_letters: int = 0,
    ) -> History:
        finals = []
        for record in results:
            body = _json(record.value)
            if body is not None and body.get("schema") == RESULT_SCHEMA:
                finals.append({**body, "_at": record.timestamp / 1000})
        runs = [{**b, "_at": r.timestamp / 1000} for r in ledger if (b := _json(r.value)) is not None and "run_id" in b]
        suggested_at: dict[tuple[str, str], float] = {}
        for record in suggestions:
            body = _json(record.value) or {}
            for s in body.get("suggestions") or []:
                if isinstance(s, dict) and isinstance(s.get("id"), str):
                    key = (str(body.get("study")), s["id"])
                    suggested_at[key] = min(suggested_at.get(key, float("inf")), record.timestamp / 1000)
        return cls(finals, runs, list(executions), set(wanted), suggested_at, dead_letters)

    def by_name(self) -> dict[str, list[Execution]]:
        out: dict[str, list[Execution]] = defaultdict(list)
        for e in self.executions:
            out[e.name].append(e)
        for runs in out.values():
            runs.sort(key=lambda e: e.start)
        return out

    def statuses(self) -> dict[str, str]:
        """The status of each suggestion's final result (not replayed), by suggestion id."""
        return {str(r.get("suggestion_id")): str(r.get("status")) for r in self.results if not r.get("replayed")}


def _examples(items: Iterable[Any], n: int = 5) -> str:
    items = list(items)
    more = f" ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def problems_of(history: History, faults: Sequence[Fault], *, all_succeeded: bool = False) -> tuple[Counts, list[str]]:
    """Counts of the history, and every rule it breaks (none: it held); `all_succeeded` for a workload whose runs
    all succeed unless a fault stops them."""
    c = Counts(dead_letters=history.dead_letters, executions=len(history.executions))
    finals = [r for r in history.results if not r.get("replayed")]
    execs = history.by_name()
    problems = result_problems(finals, history.wanted, c, all_succeeded=all_succeeded)
    problems += order_problems(finals, history.suggested_at)
    problems += reexecution_problems(execs, {sid for _, sid in history.wanted}, faults, c, history.ledger)
    problems += attempt_problems(finals, execs, faults, c)
    problems += recorded_problems(finals, history.ledger, execs)
    return c, problems


def result_problems(
    results: Sequence[dict[str, Any]], wanted: set[tuple[str, str]], c: Counts, *, all_succeeded: bool = False
) -> list[str]:
    """Exactly one final result per (study, suggestion id) and per run id, for every suggestion sent; fills `c`."""
    problems = []
    c.results = len(results)
    c.cached = sum(1 for m in results if m.get("cached"))
    c.statuses = dict(Counter(str(m.get("status")) for m in results))
    by_run = Counter(m.get("run_id") for m in results)
    by_key = Counter((m.get("study"), m.get("suggestion_id")) for m in results)
    c.distinct_runs = len(by_run)
    dup_runs = {k: n for k, n in by_run.items() if n > 1}
    dup_keys = {k: n for k, n in by_key.items() if n > 1}
    c.duplicates = max(sum(n - 1 for n in dup_runs.values()), sum(n - 1 for n in dup_keys.values()))
    missing = wanted - set(by_key)
    c.missing = len(missing)
    unexpected = set(by_key) - wanted
    if dup_keys or dup_runs:
        problems.append(f"duplicated final results: {_examples(dup_keys.items() or dup_runs.items())}")
    if missing:
        problems.append(f"{len(missing)} suggestions without a final result: {_examples(sorted(missing))}")
    if unexpected:
        problems.append(f"results for suggestions never sent: {_examples(sorted(map(str, unexpected)))}")
    if all_succeeded:
        not_ok = [(m.get("suggestion_id"), m.get("status"), m.get("error")) for m in results]
        not_ok = [x for x in not_ok if x[1] != "succeeded"]
        if not_ok:
            problems.append(f"{len(not_ok)} final results not succeeded: {_examples(not_ok, 3)}")
    return problems


def run_id_problems(results: Sequence[dict[str, Any]]) -> list[str]:
    """One final result per run id, replayed copies aside (for workloads whose suggestions are not all known)."""
    by_run = Counter(m.get("run_id") for m in results if not m.get("replayed"))
    dup = sorted((str(k), n) for k, n in by_run.items() if n > 1)
    return [f"duplicated final results: {_examples(dup)}"] if dup else []


def order_problems(results: Sequence[dict[str, Any]], suggested_at: Mapping[tuple[str, str], float]) -> list[str]:
    """No final result on the topic before its suggestion was (record timestamps, one machine's clock)."""
    early = []
    for m in results:
        key = (str(m.get("study")), str(m.get("suggestion_id")))
        if key in suggested_at and m["_at"] < suggested_at[key]:
            early.append((key, round(suggested_at[key] - m["_at"], 3)))
    return [f"{len(early)} results before their suggestion (seconds early): {_examples(early)}"] if early else []


def reexecution_problems(
    execs: Mapping[str, list[Execution]],
    names: set[str],
    faults: Sequence[Fault],
    c: Counts,
    ledger: Sequence[dict[str, Any]] = (),
) -> list[str]:
    """A run executes again only if it was in flight at a fault (on the replica the fault hit, when it says
    which): a fault between the moment one execution was under way and the start of the next; fills
    `c.reexecutions`. An attempt is under way from its `dispatched` ledger record (a grant for attempt 1) or its
    process's start, whichever came first: a replica whose record committed before it lost the partition starts
    the process after, and the next owner rightly counts that attempt as made."""
    recorded = _dispatched_at(ledger)
    unjustified = []
    for name, runs in execs.items():
        if name not in names:
            unjustified.append((name, "an execution of no suggestion of this workload"))
            continue
        c.reexecutions += len(runs) - 1
        for earlier, later in itertools.pairwise(runs):
            under_way = min(earlier.start, recorded.get((name, earlier.attempt), earlier.start))
            if not any(
                under_way <= f.at <= later.start and (f.workdir is None or earlier.ran_in(f.workdir)) for f in faults
            ):
                unjustified.append((name, f"ran at {earlier.start:.2f} and again at {later.start:.2f}"))
    if not unjustified:
        return []
    return [
        f"{len(unjustified)} re-executions of runs not in flight at a fault "
        f"(faults at {[round(f.at, 2) for f in faults]}): {_examples(unjustified, 3)}"
    ]


def attempt_problems(
    results: Sequence[dict[str, Any]], execs: Mapping[str, list[Execution]], faults: Sequence[Fault], c: Counts
) -> list[str]:
    """Attempt numbers rise strictly from one execution of a run to the next (an attempt never runs twice); the
    result's `attempt` is that of the last execution (the one that produced it); each number skipped needs a
    fault of its own between the executions around it (a kill -9 between dispatch and the job's first write, or
    a first attempt a dead owner may have started). A cached result, and one of a run that never started (a stop
    of a run still being batched: attempt 0), are excepted. Fills `c.unrecorded_attempts`."""
    wrong = []
    for m in results:
        runs = execs.get(str(m.get("suggestion_id")), [])
        numbers = [e.attempt for e in runs]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            wrong.append((m.get("suggestion_id"), f"executions={numbers}", "an attempt executed twice"))
            continue
        if m.get("cached") or (not runs and m.get("attempt") == 0):
            continue
        why = ""
        if not runs:
            why = "no execution recorded"
        elif m.get("attempt") != numbers[-1]:
            why = "not the attempt of the last execution"
        else:
            c.unrecorded_attempts += numbers[-1] - len(numbers)
            bounds = [(0.0, 0), *((e.start, e.attempt) for e in runs)]
            for (t0, a0), (t1, a1) in itertools.pairwise(bounds):
                # a0 -> a1 skips a1 - a0 - 1 attempts; each needs a fault, and so does the end of attempt a0
                if a1 - a0 > 1 and sum(1 for f in faults if t0 <= f.at <= t1) < a1 - a0 - (a0 == 0):
                    why = f"attempts {a0 + 1}..{a1 - 1} have no execution and too few faults to explain it"
        if why:
            wrong.append((m.get("suggestion_id"), f"attempt={m.get('attempt')} executions={numbers}", why))
    if not wrong:
        return []
    return [f"{len(wrong)} runs whose attempts do not match their executions: {_examples(wrong, 3)}"]


def _dispatched_at(ledger: Sequence[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """(suggestion id, attempt) -> when its first `dispatched` ledger record was written (a grant, attempt 0, is
    attempt 1's)."""
    out: dict[tuple[str, int], float] = {}
    for r in ledger:
        if r.get("state") == "dispatched" and "_at" in r:
            key = (str(r.get("suggestion_id")), max(int(r.get("attempt") or 0), 1))
            out[key] = min(out.get(key, float("inf")), float(r["_at"]))
    return out


def recorded_problems(
    results: Sequence[dict[str, Any]], ledger: Sequence[dict[str, Any]], execs: Mapping[str, list[Execution]]
) -> list[str]:
    """No execution of an attempt the ledger never recorded: the highest attempt of the run's `dispatched` and
    `finished` records (a grant, attempt 0, stands for attempt 1) is at least every execution's."""
    recorded: dict[str, int] = {}
    for r in ledger:
        if r.get("state") in ("dispatched", "finished"):
            attempt = max(int(r.get("attempt") or 0), 1 if r.get("state") == "dispatched" else 0)
            recorded[str(r["run_id"])] = max(recorded.get(str(r["run_id"]), 0), attempt)
    unrecorded = []
    for m in results:
        runs = execs.get(str(m.get("suggestion_id")), [])
        top = recorded.get(str(m.get("run_id")), 0)
        beyond = [e.attempt for e in runs if e.attempt > top]
        if beyond:
            unrecorded.append((m.get("suggestion_id"), f"executed attempts {beyond}, ledger recorded up to {top}"))
    if not unrecorded:
        return []
    return [f"{len(unrecorded)} runs executed an attempt the ledger never recorded: {_examples(unrecorded, 3)}"]
