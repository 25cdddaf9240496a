"""Replicas joining one consumer group settle at once, and each holds control partition N with suggestions N.

With two partition assignment strategies, aiokafka 0.14 sends one JoinGroup per strategy, each changing the
member's protocols, and the broker rebalances the whole group again for every change
(aio-libs/aiokafka#1168): replicas starting together, each with a slow rebalance listener (its publishers close,
its ledger is read), kept rebalancing each other, and CI saw a replica with no partition after 90 s.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from bridge.errors import ConfigError
from bridge.kafka.base import MessageConsumer, TopicPartitionLike
from bridge.kafka.broker import KafkaBroker
from tests.kafka_broker import SERVER_LOGS
from tests.polling import eventually
from tests.service.service_support import service_settings

pytestmark = pytest.mark.kafka

LISTENER_S = 0.5  # what a replica's listener takes at each rebalance, at the least


class SlowListener:
    """Takes its time at each rebalance, as a replica's does, and keeps what it was given."""

    def __init__(self) -> None:
        self.held: set[tuple[str, int]] = set()
        self.assignments = 0

    async def on_partitions_revoked(self, revoked: list[TopicPartitionLike]) -> None:
        await asyncio.sleep(LISTENER_S)
        self.held -= {(tp.topic, tp.partition) for tp in revoked}

    async def on_partitions_assigned(self, assigned: list[TopicPartitionLike], generation: int | None = None) -> None:
        await asyncio.sleep(LISTENER_S)
        self.held |= {(tp.topic, tp.partition) for tp in assigned}
        self.assignments += 1


async def _poll(consumer: MessageConsumer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await consumer.getmany(timeout_ms=100)


async def test_replicas_starting_together_settle_once_each_with_its_stops_beside_its_runs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    topics = [settings.topics.suggestions, settings.topics.control]
    broker = KafkaBroker(settings)
    await broker.prepare()
    consumers = [await broker.connect() for _ in range(3)]
    listeners = [SlowListener() for _ in consumers]
    stop = asyncio.Event()
    for consumer, listener in zip(consumers, listeners, strict=True):
        consumer.subscribe(topics, listener)
    polls = [asyncio.create_task(_poll(c, stop)) for c in consumers]
    try:

        def settled() -> bool:
            held = [listener.held for listener in listeners]
            return all(held) and sum(len(h) for h in held) == 8 and len(set().union(*held)) == 8

        await eventually(settled, timeout=60, interval=0.1, what=lambda: f"held: {[x.held for x in listeners]}")
    finally:
        stop.set()
        await asyncio.gather(*polls, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()
    for listener in listeners:  # control partition N with suggestions partition N: a stop reaches its run
        numbers = {topic: {p for t, p in listener.held if t == topic} for topic in topics}
        assert numbers[settings.topics.suggestions] == numbers[settings.topics.control], listener.held
    log = SERVER_LOGS.get(kafka_bootstrap)
    if log is None:
        return  # an external broker: its log is not ours to read
    group = settings.kafka.group_id
    lines = [line for line in log.read_text(errors="replace").splitlines() if group in line]
    changed = [line for line in lines if "Updating metadata for member" in line]
    assert not changed, "a member changed its protocols while joining, a rebalance more:\n" + "\n".join(changed)
    stable = r"Stabilized group \S+ generation (\d+)"
    generations = [int(m.group(1)) for line in lines if (m := re.search(stable, line))]
    assert max(generations) <= 3, f"three consumers took {max(generations)} generations to settle:\n" + "\n".join(lines)


async def test_a_replica_joining_a_group_of_round_robin_members_says_what_to_do(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A bridge older than the co-partitioned stops assigned round robin: a replica of this version cannot share its
    group (its stops would miss), and says so instead of retrying the join without end."""
    settings = service_settings(kafka_bootstrap, tmp_path)
    broker = KafkaBroker(settings)
    await broker.prepare()
    older = AIOKafkaConsumer(
        settings.topics.suggestions,
        bootstrap_servers=kafka_bootstrap,
        group_id=settings.kafka.group_id,
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
    )
    await older.start()
    newer = await broker.connect()
    try:
        await eventually(lambda: bool(older.assignment()), timeout=30, interval=0.1)
        newer.subscribe([settings.topics.suggestions, settings.topics.control], SlowListener())
        stop = asyncio.Event()
        with pytest.raises(ConfigError, match="assign partitions another way"):
            await asyncio.wait_for(_poll(newer, stop), 30)
    finally:
        await newer.stop()
        await older.stop()
