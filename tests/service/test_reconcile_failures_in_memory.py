"""A partition's reconciliation that fails (a broker hiccup while its ledger is read) is tried again; one that keeps
failing stops the replica with a reason, so its partitions go to a replica that can serve them. It never leaves
the replica stalled, its records waiting for good and SIGTERM unable to drain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.app import build_service
from bridge.errors import BrokerRefused, Retryable
from bridge.kafka.base import PartitionSink
from bridge.kafka.memory import MemoryBroker
from bridge.service import rebalance
from tests.polling import eventually
from tests.service.memory_support import RESULT, FakeExecutor, memory_settings, serving, until
from tests.service.service_support import suggestion


class _FlakyBroker(MemoryBroker):
    """Its ledger cannot be read `failures` times (then it can, if ever): the broker is away, or (`refuse`) it
    refuses."""

    failures = 1
    refuse = False

    async def catch_up(self, partition: int, sink: PartitionSink) -> None:
        if self.failures > 0:
            self.failures -= 1
            if self.refuse:
                raise BrokerRefused("the broker refused to read the ledger")
            raise Retryable("the broker went away while the ledger was read")
        await super().catch_up(partition, sink)


async def test_a_reconciliation_that_fails_once_is_tried_again(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = _FlakyBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        (result,) = await until(broker, topics.results, 1, RESULT)
    assert result["status"] == "succeeded"


async def test_a_reconciliation_that_keeps_failing_stops_the_replica_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebalance, "RECONCILE_RETRY_S", 0.3)
    settings = memory_settings(tmp_path)
    broker = _FlakyBroker(settings)
    broker.failures, broker.refuse = 10**6, True
    broker.send(settings.topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
    service = build_service(settings, broker=broker, executor=FakeExecutor())
    await asyncio.wait_for(service.run(), timeout=30)  # returns by itself: it stopped, it did not stall
    assert any("could not reconcile" in f and "the broker refused" in f for f in service.publish_failures)


async def test_a_replica_stopped_while_the_broker_is_away_drains_without_waiting_for_it(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = _FlakyBroker(settings)
    broker.failures = 10**6  # away for good: the reconciliation waits for it, for as long as it serves
    service = build_service(settings, broker=broker, executor=FakeExecutor())
    task = asyncio.create_task(service.run())
    await eventually(lambda: broker.failures < 10**6 - 1, timeout=10, interval=0.01)  # it tried, and tries again
    service.stop()  # SIGTERM
    await asyncio.wait_for(task, timeout=30)
    assert service.publish_failures == []  # let go on shutdown: not a failure of the replica
