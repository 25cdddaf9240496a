"""Dead letters: a record the bridge cannot take goes to the dead-letter topic, bounded, with its reason."""

from __future__ import annotations

import structlog

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.kafka.base import ConsumedRecord, Outgoing
from bridge.kafka.offsets import Partition
from bridge.service.ledger.index import IndexedRun
from bridge.service.publishing import Publishers
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)


class DeadLetters:
    """Writes dead letters through the publisher of the partition they come from."""

    def __init__(self, settings: BridgeSettings, publishers: Publishers, telemetry: Telemetry) -> None:
        self._topic = settings.topics.dead_letters
        self._excerpt = settings.limits.max_excerpt_bytes
        self._publishers = publishers
        self._telemetry = telemetry

    def of_record(self, part: Partition, record: ConsumedRecord, error: DeadLetterError) -> None:
        """The dead letter of a consumed record; it completes the record's offset."""
        letter = DeadLetter.of_record(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp_ms=record.timestamp,
            error=error,
            headers=[(str(k), v) for k, v in (record.headers or ())],
            max_excerpt_bytes=self._excerpt,
        )
        log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            type=error.type,
            field=(error.field or "")[:200],
            message=error.message[:300],
        )
        self._telemetry.dead_lettered(error.type)
        self._telemetry.suggestion_received("_unknown", "dead_lettered")
        outgoing = Outgoing(self._topic, record.key, letter.to_json().encode(), completes=record.offset)
        self._publishers.publish(part, outgoing)

    def of_ledger_row(self, part: Partition, ledger_topic: str, row: IndexedRun, error: DeadLetterError) -> None:
        """The dead letter of an unfinished ledger record that reconciliation refused to run."""
        letter = DeadLetter.of_record(
            topic=ledger_topic,
            partition=part.partition,
            offset=row.offset or 0,
            key=row.run_id.encode(),
            value=row.record,
            timestamp_ms=None,
            error=DeadLetterError(
                type="invalid_ledger_record", field=error.field, message=f"{error.type}: {error.message}"
            ),
            max_excerpt_bytes=self._excerpt,
        )
        log.error("ledger_record_refused", partition=part.partition, run_id=row.run_id[:200], type=error.type)
        self._telemetry.dead_lettered("invalid_ledger_record")
        self._publishers.publish(part, Outgoing(self._topic, row.run_id.encode(), letter.to_json().encode()))
