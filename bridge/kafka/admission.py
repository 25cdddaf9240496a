"""Which runs of an accepted message are new: the ledger, not a memory window, knows what was seen before.

Every run id of a valid message is one of:
- fresh: never seen; it gets a `received` record and runs;
- waiting: already running here, or unfinished in the ledger (reconciliation runs it); nothing more to do;
- a replay: finished before; it is answered with a copy of that result, marked `replayed`;
- a conflict: the same study, template and suggestion id seen before with other params; a dead letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bridge.identity import fingerprint
from bridge.intake import Accepted
from bridge.kafka.ledger_index import LedgerIndex
from bridge.kafka.registry import RunRegistry
from bridge.models import RunResult
from bridge.plan import PlannedRun


@dataclass
class Admission:
    """What to do with each run of one accepted message."""

    fresh: list[tuple[PlannedRun, str]] = field(default_factory=list)  # with its fingerprint
    waiting: int = 0
    replays: list[RunResult] = field(default_factory=list)
    conflicts: list[tuple[int, PlannedRun]] = field(default_factory=list)  # with its index in the message


def _replay(record: bytes) -> RunResult | None:
    try:
        body = json.loads(record).get("result")
        return None if body is None else RunResult.model_validate({**body, "replayed": True})
    except (ValueError, TypeError, AttributeError):
        return None


def admit(accepted: Accepted, in_flight: RunRegistry, index: LedgerIndex) -> Admission:
    """Sort the runs of `accepted` by what the bridge already knows of them."""
    out = Admission()
    for position, run in enumerate(accepted.runs):
        print_ = fingerprint(run.given)
        item = in_flight.get(run.run_id)
        if item is not None:
            known: str | None = item.record.fingerprint
            finished: bytes | None = None
            seen = True
        else:
            row = index.get(run.run_id)
            seen = row is not None and (row.state is not None or row.local is not None)
            known = row.fingerprint if row is not None else None
            finished = row.finished_record if row is not None else None
        if not seen:
            out.fresh.append((run, print_))
        elif known is not None and known != print_:
            out.conflicts.append((position, run))
        elif finished is not None and (copy := _replay(finished)) is not None:
            out.replays.append(copy)
        else:
            out.waiting += 1
    return out
