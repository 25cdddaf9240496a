"""The run ledger: a compacted topic, keyed by run id, written to the partition number of the suggestion that
caused the run, by that partition's transactional producer.

Three states per run, each written before what depends on it is committed:
- `received`: in the same transaction as the consumed offset of its suggestion record, with all it takes to
  run it again (so committing the offset loses nothing);
- `dispatched`: committed before the run's process starts, with its attempt number;
- `finished`: in the same transaction as the run's one result message.

A replica that is assigned a partition first fences the previous owner (its transactional producer with the
same id), then reads the ledger partition to its end and reconciles by run id: finished runs are never run or
published again; received or dispatched ones run again, the latter with `attempt + 1`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from bridge.config import BridgeSettings
from bridge.kafka.connection import client_kwargs
from bridge.messages import LedgerRecord

log = structlog.get_logger(__name__)


def parse_record(raw: bytes | None) -> LedgerRecord | None:
    """A ledger record, or None for a tombstone or a record this version cannot read."""
    if raw is None:
        return None
    try:
        return LedgerRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        log.warning("ledger_record_unreadable", value=raw[:200])
        return None


async def read_partition(
    settings: BridgeSettings, partition: int, *, timeout_s: float = 60.0
) -> dict[str, LedgerRecord]:
    """The last committed record of every run in one ledger partition (read_committed, to its end)."""
    tp = TopicPartition(settings.topics.ledger, partition)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    state: dict[str, LedgerRecord] = {}
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ledger partition {partition} not read to its end ({end}) in {timeout_s:g} s")
            # A batch can be empty while the position still moves past transaction markers.
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                entry = parse_record(record.value)
                if entry is not None:
                    state[entry.run_id] = entry
                elif record.key is not None:
                    state.pop(record.key.decode(errors="replace"), None)
    finally:
        await consumer.stop()
    return state


def summarize(state: Mapping[str, LedgerRecord]) -> dict[str, int]:
    """Runs by ledger state, for the log."""
    out = {"received": 0, "dispatched": 0, "finished": 0}
    for entry in state.values():
        out[entry.state] += 1
    return out
