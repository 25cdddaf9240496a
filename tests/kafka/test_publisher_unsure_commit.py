"""A commit that fails on its way back, after the broker committed it (aiokafka's "Unexpected error during batch
delivery" after EndTxn), is not sent again: the publisher asks the broker first (the group's offset, or the end
of the ledger partition only it writes), so nothing is published twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bridge.errors import BrokerRefused
from bridge.kafka.base import Outgoing
from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import OffsetTracker, Partition
from tests.service.memory_support import memory_publisher, memory_settings
from tests.service.service_support import running, service_settings, suggestion

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("with_offset", [True, False])
async def test_a_batch_committed_before_its_reply_failed_is_not_published_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_offset: bool
) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    commit = broker.commit
    failures = [1]

    def committed_then_lost(*args: Any, **kwargs: Any) -> None:
        commit(*args, **kwargs)
        if failures[0]:
            failures[0] -= 1
            raise BrokerRefused("Unexpected error during batch delivery")

    monkeypatch.setattr(broker, "commit", committed_then_lost)
    source = Partition(settings.topics.suggestions, 0)
    tracker = OffsetTracker()
    publisher = memory_publisher(broker, source, tracker)
    await publisher.start()
    try:
        if with_offset:
            tracker.add(source, 0, 1)
        result = Outgoing(settings.topics.results, b"s", b'{"result": 1}', completes=0 if with_offset else None)
        finished = Outgoing(settings.topics.ledger, b"run", b'{"state": "finished"}', partition=0)
        publisher.publish(result)
        await publisher.publish(finished)
    finally:
        await publisher.close()
    assert [r.value for r in broker.records(settings.topics.results)] == [b'{"result": 1}']
    assert len(broker.records(settings.topics.ledger)) == 1
    assert failures == [0]  # the failure did happen


@pytest.mark.kafka
async def test_on_the_real_broker_a_lost_commit_reply_publishes_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.kafka_broker import read_topic

    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 0})
    commit = AIOKafkaProducer.commit_transaction
    lost: list[str] = []

    commits: list[bool] = []  # per commit of the suggestions' publishers: whether its reply was lost

    async def committed_then_lost(self: AIOKafkaProducer) -> None:
        await commit(self)
        if "suggestions" not in str(self._txn_manager.transactional_id):
            return
        # Every other commit, up to 4: its retry goes through; the run's result is in one of them.
        lose = len(lost) < 4 and not (commits and commits[-1])
        commits.append(lose)
        if lose:
            lost.append(str(self._txn_manager.transactional_id))
            raise KafkaError("Unexpected error during batch delivery")

    async with running(settings):
        monkeypatch.setattr(AIOKafkaProducer, "commit_transaction", committed_then_lost)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topics.suggestions, suggestion("s", [{"name": "once"}], ids=["once"]), key=b"s"
            )
        finally:
            await producer.stop()
        records = await read_topic(
            kafka_bootstrap,
            settings.topics.results,
            until=lambda rs: any(json.loads(r.value).get("schema") == "bridge.result/v1" for r in rs),
        )
    monkeypatch.undo()
    results, _ = await _all(kafka_bootstrap, settings.topics.results)
    finals = [m for m in results if m.get("schema") == "bridge.result/v1"]
    assert lost, "the commit reply was never lost: the test did not test anything"
    assert [m["suggestion_id"] for m in finals] == ["once"], finals
    assert records


async def _all(bootstrap: str, topic: str) -> tuple[list[dict[str, Any]], str]:
    from tests.faults.harness import read_to_end

    records, problem = await read_to_end(bootstrap, topic)
    return [json.loads(r.value) for r in records], problem
