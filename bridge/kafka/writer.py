"""A writer of plain records to any topic, for those outside the service (the client's suggestions, `bridge stop`'s
control message): idempotent, acknowledged by every in-sync replica, no transaction. It raises the bridge's errors,
never aiokafka's."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from bridge.config.sections import KafkaSettings
from bridge.kafka.connection import client_kwargs, with_broker_retry
from bridge.kafka.errors import as_bridge_errors


@dataclass(frozen=True)
class Sent:
    """Where a record landed."""

    topic: str
    partition: int
    offset: int


class TopicWriter:
    """Sends records one at a time, each waited for until the broker has it."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._servers = kafka.bootstrap_servers
        self._producer = AIOKafkaProducer(**client_kwargs(kafka), acks="all", enable_idempotence=True)

    async def start(self, doing: str, *, give_up_after_s: float) -> None:
        """Connect, retrying while the broker is away (`Retryable` after `give_up_after_s`)."""
        await with_broker_retry(doing, self._producer.start, give_up_after_s=give_up_after_s, servers=self._servers)

    async def stop(self) -> None:
        """Disconnect, after what was sent is acknowledged."""
        await self._producer.stop()

    async def send(self, topic: str, value: bytes, *, key: bytes | None) -> Sent:
        """Send one record and wait until the broker has it."""
        with as_bridge_errors(f"send to {topic}"):
            meta = await self._producer.send_and_wait(topic, value, key=key)
        return Sent(meta.topic, meta.partition, meta.offset)
