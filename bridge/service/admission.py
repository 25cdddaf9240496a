"""Which suggestions of a readable message are new: the ledger, not a memory window, knows what was seen before.

Every suggestion's run id is one of:
- fresh: never seen; it gets a `received` record (or an early-start grant in its place) and runs;
- waiting: already running here, or unfinished in the ledger (reconciliation runs it); nothing more to do;
- a replay: finished before (or refused before); it is answered with a copy of that result, marked `replayed`;
- a refusal: invalid for its template, never seen; it is answered with a failed result (`answers`);
- a conflict: the same study, template and suggestion id seen before with other params; it is answered with a
  failed `conflicting_suggestion` result under a run id of its own (or a replay of that answer).
A message with refusals or conflicts also gets its one dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.identity import fingerprint
from bridge.contract.results import RunResult
from bridge.engine.plan import PlannedRun
from bridge.service.answers import conflict
from bridge.service.intake import Accepted, Refused, dead_letter_of
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ledger.records import finished_result
from bridge.service.registry import RunRegistry


@dataclass
class Admission:
    """What to do with each suggestion of one readable message."""

    fresh: list[tuple[PlannedRun, str]] = field(default_factory=list)  # with its fingerprint
    waiting: int = 0
    replays: list[RunResult] = field(default_factory=list)
    answers: list[tuple[Refused, str]] = field(default_factory=list)  # failed answers to publish, with fingerprints
    conflicts: list[Refused] = field(default_factory=list)  # answered now or replayed: the dead letter names them
    dead_letter: DeadLetterError | None = None


@dataclass(frozen=True)
class _Known:
    seen: bool
    fingerprint: str | None
    finished: bytes | None


def _replay(record: bytes) -> RunResult | None:
    result = finished_result(record)
    return None if result is None else result.model_copy(update={"replayed": True})


def _known(run_id: str, in_flight: RunRegistry, index: LedgerIndex) -> _Known:
    item = in_flight.get(run_id)
    if item is not None:
        return _Known(True, item.record.fingerprint, None)
    row = index.get(run_id)
    if row is None:
        return _Known(False, None, None)
    return _Known(row.state is not None or row.local is not None, row.fingerprint, row.finished_record)


class _Sorter:
    def __init__(self, in_flight: RunRegistry, index: LedgerIndex) -> None:
        self._in_flight = in_flight
        self._index = index
        self.out = Admission()

    def run(self, run: PlannedRun) -> None:
        print_ = fingerprint(run.given)
        known = _known(run.run_id, self._in_flight, self._index)
        if not known.seen:
            self.out.fresh.append((run, print_))
        else:
            self._seen(run, known, print_)

    def refused(self, refused: Refused) -> None:
        print_ = fingerprint(refused.given)
        known = _known(refused.run_id, self._in_flight, self._index)
        if not known.seen:
            self.out.answers.append((refused, print_))
        else:
            self._seen(refused, known, print_)

    def _seen(self, run: PlannedRun | Refused, known: _Known, print_: str) -> None:
        if known.fingerprint is not None and known.fingerprint != print_:
            answer = conflict(run, run.index, print_)
            self.out.conflicts.append(answer)
            known = _known(answer.run_id, self._in_flight, self._index)
            if not known.seen:
                self.out.answers.append((answer, print_))
            elif not self._replayed(known):
                self.out.waiting += 1
        elif not self._replayed(known):
            self.out.waiting += 1

    def _replayed(self, known: _Known) -> bool:
        copy = _replay(known.finished) if known.finished is not None else None
        if copy is not None:
            self.out.replays.append(copy)
        return copy is not None


def admit(accepted: Accepted, in_flight: RunRegistry, index: LedgerIndex) -> Admission:
    """Sort the suggestions of `accepted` by what the bridge already knows of them."""
    sorter = _Sorter(in_flight, index)
    for run in accepted.runs:
        sorter.run(run)
    for refused in accepted.refused:
        sorter.refused(refused)
    out = sorter.out
    errors = [r.error for r in accepted.refused] + [c.error for c in out.conflicts]
    out.dead_letter = dead_letter_of(errors) if errors else None
    return out
