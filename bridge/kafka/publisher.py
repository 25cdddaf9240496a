"""Publishing what a suggestions partition caused, exactly once: results, progress, operation events and dead
letters go out in one Kafka transaction together with the consumed offsets they complete.

One transactional producer per input partition, its transactional id derived from the group, topic and
partition: aiokafka's `send_offsets_to_transaction` carries no consumer generation (no KIP-447 fencing), so a
stable id per partition is what fences a zombie owner after a rebalance (aiokafka#844). Records wait in a queue
and leave in batches (one transaction per batch), which is what keeps the guarantee cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from bridge.config import BridgeSettings
from bridge.kafka.connection import client_kwargs
from bridge.offsets import OffsetTracker, Partition

log = structlog.get_logger(__name__)

TXN_RETRIES = 5


@dataclass(frozen=True)
class Outgoing:
    """One record to publish, and the unit of work (a consumed record's offset) it completes, if any."""

    topic: str
    key: bytes | None
    value: bytes
    completes: int | None = None


class PartitionPublisher:
    """Owns the transactional producer of one input partition and publishes its records in transactions."""

    def __init__(
        self,
        settings: BridgeSettings,
        source: Partition,
        tracker: OffsetTracker,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._source = source
        self._tracker = tracker
        self._queue: list[Outgoing] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._on_commit = on_commit
        group = settings.kafka.group_id
        self.transactional_id = f"{group}.{source.topic}.{source.partition}"
        self._producer = AIOKafkaProducer(
            **client_kwargs(settings.kafka),
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            max_request_size=max(settings.max_message_bytes * 4, 1024 * 1024),
            linger_ms=5,
        )
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    async def start(self) -> None:
        """Connect; starting the producer fences any earlier owner of the same transactional id."""
        await self._producer.start()
        self._task = asyncio.create_task(self._loop(), name=f"publisher-{self.transactional_id}")

    def publish(self, record: Outgoing) -> None:
        """Queue a record for the next transaction."""
        self._queue.append(record)
        self._idle.clear()
        self._wakeup.set()

    def complete(self) -> None:
        """Wake the loop so newly committable offsets (work done with nothing to publish) are committed."""
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self.failed is not None:
            raise self.failed
        await self._idle.wait()
        if self.failed is not None:
            raise self.failed

    async def close(self) -> None:
        """Publish what is queued, then stop."""
        if self._task is not None and self.failed is None:
            await self.flush()
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._producer.stop()

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            for record in batch:
                if record.completes is not None:
                    self._tracker.done(self._source, record.completes)
            offsets = self._tracker.committable()
            offset = offsets.get(self._source)
            if batch or offset is not None:
                try:
                    await self._transaction(batch, offset)
                except BaseException as exc:
                    self.failed = exc
                    self._idle.set()
                    log.error("publish_failed", transactional_id=self.transactional_id, error=str(exc))
                    raise
            if not self._queue:
                self._idle.set()

    async def _transaction(self, batch: list[Outgoing], offset: int | None) -> None:
        began = time.monotonic()
        for attempt in range(1, TXN_RETRIES + 1):
            try:
                async with self._producer.transaction():
                    futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in batch]
                    if offset is not None:
                        tp = TopicPartition(self._source.topic, self._source.partition)
                        await self._producer.send_offsets_to_transaction(
                            {tp: OffsetAndMetadata(offset, "")}, self._settings.kafka.group_id
                        )
                    if futures:
                        await asyncio.gather(*futures)
                break
            except ProducerFenced:
                raise  # another owner took this partition: never publish again from here
            except KafkaError as exc:
                if attempt == TXN_RETRIES:
                    raise
                log.warning(
                    "transaction_retry",
                    transactional_id=self.transactional_id,
                    attempt=attempt,
                    error=str(exc),
                )
                await asyncio.sleep(min(0.2 * 2**attempt, 5))  # backoff before the next transaction
        if self._on_commit is not None:
            self._on_commit(len(batch), time.monotonic() - began)
