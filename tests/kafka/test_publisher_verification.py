"""A transaction that carries records and the consumed offset goes through the broker's transaction verification
(KIP-890, Kafka 4) at once: no produce is answered NOT_ENOUGH_REPLICAS and retried after a back-off.

The broker checks each transactional produce with the transaction coordinator; while the coordinator is writing
another change of the same transaction (the AddOffsetsToTxn of `send_offsets_to_transaction`), that check fails,
and a producer of aiokafka's produce version gets NOT_ENOUGH_REPLICAS and waits `retry_backoff_ms` before sending
again: a stall of the partition's transaction, measured at about 50 per 1,000 results by benchmarks/one_study.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.kafka.base import Outgoing
from bridge.kafka.broker import KafkaBroker
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.kafka.publisher import PartitionPublisher
from tests.service.service_support import service_settings

pytestmark = [pytest.mark.asyncio, pytest.mark.kafka]

TRANSACTIONS = 300


async def test_records_and_offsets_commit_without_produce_retries(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    await KafkaBroker(settings).prepare()  # the topics, with leaders
    topics = settings.topics
    source = Partition(topics.suggestions, 0)
    tracker = OffsetTracker()
    publisher = PartitionPublisher(settings, source, tracker)
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    await publisher.start()
    try:
        for offset in range(TRANSACTIONS):  # what one result of a one-suggestion message publishes
            tracker.add(source, offset, 1)
            run = f"run-{offset}".encode()
            publisher.publish(Outgoing(topics.ledger, run, b'{"state": "finished"}', partition=0))
            publisher.publish(Outgoing(topics.operations, b"s", b'{"event": "finished"}'))
            await publisher.publish(Outgoing(topics.results, b"s", b'{"status": "succeeded"}', completes=offset))
    finally:
        await publisher.close()
    retried = [r.getMessage() for r in caplog.records if "NotEnoughReplicas" in r.getMessage()]
    assert retried == [], f"{len(retried)} produce retries in {TRANSACTIONS} transactions: {retried[:3]}"
