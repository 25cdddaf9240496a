"""The run ledger: a compacted topic, keyed by run id, written to the partition number of the suggestion that
caused the run, by that partition's transactional producer.

Three states per run, each written before what depends on it is committed:
- `received`: in the same transaction as the consumed offset of its suggestion record, with all it takes to
  run it again (so committing the offset loses nothing);
- `dispatched`: with attempt 0, a *grant*: attempt 1 may start before its own record commits (`early_start.py`);
  then with its attempt number as the attempt starts: committed first, unless granted (then only queued, and a
  next owner after a crash counts the granted attempt as made: `lease.py`); then once more with its process
  group, only queued: it commits in the next transaction, at the latest with the result, and only serves to reap
  what a kill -9 left, PR_SET_PDEATHSIG having killed the run itself;
- `finished`: in the same transaction as the run's one result message.
Each partition of the ledger also holds one `~owner` marker (`bridge.owner/v1`): who holds it, and whether they
let it go cleanly (`lease.py`).

A replica that is assigned a partition first fences the previous owner (its transactional producer with the
same id), then reads the ledger partition to its end into its on-disk index (`ledger_index.py`) and reconciles
by run id: finished runs are never run or published again; received or dispatched ones run again, the latter
with `attempt + 1`, a page at a time. A record is re-validated before it runs, exactly like a suggestion: the
ledger is a topic, and whoever can write to it must not be able to make the bridge run anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import structlog

from bridge.contract.codec import parse_message
from bridge.contract.identity import fingerprint
from bridge.contract.limits import Limits
from bridge.contract.messages import LEDGER_SCHEMA, LedgerRecord
from bridge.contract.results import RunResult
from bridge.contract.versions import LEDGER, is_newer
from bridge.kafka.base import ConsumedRecord
from bridge.service.ledger.index import LedgerEntryIn, LedgerIndex
from bridge.service.ledger.lease import OWNER_KEY, owner_of

log = structlog.get_logger(__name__)


def parse_record(raw: bytes | None, limits: Limits | None = None) -> LedgerRecord:
    """A ledger record, checked like any message from a topic; raises `MessageError` when it is not one."""
    data = parse_message(raw or b"", accept=(LEDGER_SCHEMA,), limits=limits)
    assert isinstance(data, LedgerRecord)
    return data


def finished_result(raw: bytes) -> RunResult | None:
    """The final result a `finished` record holds (what a replay copies, what a stop of a finished run answers);
    None when it holds none this bridge can read. The one reader of a finished record's result."""
    try:
        body = json.loads(raw).get("result")
        return None if body is None else RunResult.model_validate(body)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None


def newer_version(raw: bytes | None) -> str | None:
    """The schema of a ledger record of another version than this bridge's (`bridge.ledger/v2`...), else None."""
    try:
        schema = json.loads(raw or b"").get("schema")
    except (ValueError, AttributeError, RecursionError):
        return None
    return schema if is_newer(schema) and schema.startswith(f"{LEDGER}/") else None


def index_entry(offset: int, key: bytes | None, value: bytes | None) -> LedgerEntryIn | None:
    """What the index keeps of one record: its state, attempt and fingerprint when readable. A record this
    version cannot read is kept as `received`, so reconciliation reports it (a dead letter) instead of losing it."""
    if key is None:
        return None
    run_id = key.decode("utf-8", errors="replace")[:256]
    if run_id == OWNER_KEY:  # not a run: who owned the partition last (`lease.py`)
        owner = owner_of(value)
        return LedgerEntryIn(offset, run_id, owner.state if owner else None, claim=owner.claim if owner else None)
    if value is None:
        return LedgerEntryIn(offset, run_id, None)
    try:
        data = json.loads(value)
        state = data["state"]
        if state not in ("received", "dispatched", "finished"):
            raise ValueError(state)
        attempt = int(data.get("attempt") or 0)
        given = data.get("given")
        print_ = data.get("fingerprint") or (fingerprint(given) if isinstance(given, dict) and given else None)
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError):
        return LedgerEntryIn(offset, run_id, "received", record=value)
    return LedgerEntryIn(offset, run_id, state, attempt, print_ if isinstance(print_, str) else None, value)


class IndexSink:
    """A ledger partition's records, as the broker reads them (`kafka.base.PartitionSink`), into the index."""

    def __init__(self, index: LedgerIndex) -> None:
        self._index = index

    def next_offset(self, partition: int) -> int:
        return self._index.next_offset(partition)

    def forget(self, partition: int) -> None:
        self._index.forget(partition)

    def take(self, partition: int, records: Sequence[ConsumedRecord], position: int) -> None:
        entries = [e for r in records if (e := index_entry(r.offset, r.key, r.value)) is not None]
        self._index.apply(partition, entries, position)
        tombstones = sum(1 for e in entries if e.state is None)
        if tombstones:
            log.debug("ledger_tombstones_read", partition=partition, tombstones=tombstones)
