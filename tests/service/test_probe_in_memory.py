"""The broker probe goes on while the offsets it asks after hang: a broker cut off just after a probe's answer
is said on `/readyz` by the next probe, not after the consumer's 40 s request timeout (the network fault test of
a replica cut off for 30 s, whose `/readyz` stayed 200 throughout in CI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.kafka.base import TopicPartitionLike
from bridge.kafka.memory import MemoryBroker
from tests.polling import eventually
from tests.service.memory_support import FakeExecutor, memory_settings, serving


async def test_a_probe_is_not_held_up_by_the_offsets_it_asks_after(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    async with serving(settings, broker, FakeExecutor()) as service:
        await eventually(lambda: service.health.ready()[0], timeout=5, interval=0.01)
        loop = service._rebalancer()._loop
        cut = asyncio.Event()  # never set: the broker stops answering as the offsets are asked

        async def unanswered(partitions: list[TopicPartitionLike]) -> dict[TopicPartitionLike, int]:
            await cut.wait()
            return {}

        assert service.consumer is not None
        service.consumer.end_offsets = unanswered  # type: ignore[method-assign]
        await asyncio.wait_for(loop.refresh(broker_ok=True), 1)  # the probe's answer: the probe goes on
        await asyncio.wait_for(loop.refresh(broker_ok=False), 1)  # the next probe: no answer
        await eventually(lambda: service.health.ready() == (False, "broker unreachable"), timeout=5, interval=0.01)
