"""Reading topics without a group, committed records only (read_committed), nothing committed.

`TopicReader` is for those who only look, from a topic's end or its beginning: the client, `bridge stop`,
`bridge dlq` and `bridge tail` read through it; it hands over broker-neutral `Record`s and raises the bridge's
errors, never aiokafka's. `read_to_end` reads one partition from where a sink stopped to its end, a page at a
time, so memory stays bounded however many records it holds: the service reads its ledger this way."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bridge.config.sections import KafkaSettings
from bridge.config.settings import BridgeSettings
from bridge.kafka.base import PartitionSink
from bridge.kafka.connection import client_kwargs, with_broker_retry
from bridge.kafka.errors import as_bridge_errors
from bridge.kafka.offsets import Partition

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Record:
    """One record read (a `bridge.kafka.base.ConsumedRecord`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _tp(part: Partition) -> TopicPartition:
    return TopicPartition(part.topic, part.partition)


def _record(record: ConsumerRecord[bytes, bytes]) -> Record:
    return Record(record.topic, record.partition, record.offset, record.key, record.value)


class TopicReader:
    """Reads the partitions it is assigned, or every partition of the topics it `follows` (those created later
    too); a follower starts at each partition's beginning with `from_beginning`, else at its end."""

    def __init__(self, kafka: KafkaSettings, *, follows: Collection[str] = (), from_beginning: bool = False) -> None:
        self._servers = kafka.bootstrap_servers
        self._consumer = AIOKafkaConsumer(
            *follows,
            **client_kwargs(kafka),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest" if from_beginning else "latest",
        )

    async def start(self, doing: str, *, give_up_after_s: float) -> None:
        """Connect, retrying while the broker is away (`Retryable` after `give_up_after_s`); `doing` names what
        for, in that error."""
        await with_broker_retry(doing, self._consumer.start, give_up_after_s=give_up_after_s, servers=self._servers)

    async def stop(self) -> None:
        """Disconnect (also after a start that failed: an unstopped consumer is reported at exit)."""
        await self._consumer.stop()

    async def assign(self, partitions: Collection[Partition], *, at: Literal["beginning", "end"]) -> None:
        """Read `partitions` from their beginning or from where they end now; the positions are fixed on return,
        so what is written afterwards is read."""
        tps = [_tp(p) for p in partitions]
        with as_bridge_errors("assign partitions"):
            self._consumer.assign(tps)
            if not tps:
                return
            if at == "end":
                await self._consumer.seek_to_end(*tps)
            else:
                await self._consumer.seek_to_beginning(*tps)
            for tp in tps:
                await self._consumer.position(tp)

    def assignment(self) -> set[Partition]:
        """The partitions read."""
        return {Partition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    async def end_offsets(self, partitions: Collection[Partition]) -> dict[Partition, int]:
        """Where `partitions` end now (the last stable offsets: committed records only)."""
        with as_bridge_errors("look up where partitions end"):
            ends = await self._consumer.end_offsets([_tp(p) for p in partitions])
        return {Partition(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def behind(self, ends: Mapping[Partition, int]) -> list[Partition]:
        """The partitions of `ends` not yet read up to their end there."""
        with as_bridge_errors("look up positions"):
            return [p for p, end in ends.items() if await self._consumer.position(_tp(p)) < end]

    async def read(self, timeout_s: float, *only: Partition, at_most: int | None = None) -> list[Record]:
        """The records that come within `timeout_s` (of `only` those partitions, when given), in order per
        partition; `at_most` that many, the others kept for the next read."""
        with as_bridge_errors("read records"):
            batches = await self._consumer.getmany(
                *map(_tp, only), timeout_ms=int(max(0.0, timeout_s) * 1000), max_records=at_most
            )
        return [_record(record) for records in batches.values() for record in records]


async def read_to_end(
    settings: BridgeSettings,
    topic: str,
    partition: int,
    sink: PartitionSink,
    *,
    timeout_s: float = 120.0,
    page: int = 2000,
) -> None:
    """Hand `sink` every committed record of `topic`:`partition` after `sink.next_offset`, up to the end the
    partition had when reading began; raises TimeoutError when that end is not reached in `timeout_s`."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(settings.limits.max_record_bytes, 1024 * 1024),
    )
    with as_bridge_errors(f"read {topic}:{partition} to its end"):  # a broker away is `Retryable`
        await _read_to_end(consumer, tp, sink, timeout_s=timeout_s, page=page)


async def _read_to_end(
    consumer: AIOKafkaConsumer, tp: TopicPartition, sink: PartitionSink, *, timeout_s: float, page: int
) -> None:
    topic, partition = tp.topic, tp.partition
    await consumer.start()
    try:
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        start = sink.next_offset(partition)
        if start > end:  # the topic was recreated: what the sink holds is of another topic
            sink.forget(partition)
            start = 0
        start = max(start, begin)
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        position = start
        read = 0
        while position < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} partition {partition} not read to its end ({end}) in {timeout_s:g} s")
            # A batch can be empty while the position still moves past transaction markers.
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=page)
            records = batch.get(tp, [])
            position = await consumer.position(tp)
            sink.take(partition, records, position)
            read += len(records)
        log.info("partition_read_to_end", topic=topic, partition=partition, start=start, end=end, read=read)
    finally:
        await consumer.stop()


async def read_tail(
    settings: BridgeSettings, part: Partition, count: int, *, timeout_s: float = 30.0
) -> list[tuple[bytes | None, bytes | None]]:
    """The (key, value) of the last `count` committed records of `part` (fewer if it holds fewer); raises
    TimeoutError when they cannot be read in `timeout_s`."""
    tp = TopicPartition(part.topic, part.partition)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=max(settings.limits.max_record_bytes, 1024 * 1024),
    )
    with as_bridge_errors(f"read the end of {part.topic}:{part.partition}"):
        await consumer.start()
        try:
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            # Each transaction's commit marker takes an offset too: read a little before, keep the last `count`.
            consumer.seek(tp, max(begin, end - 2 * count - 2))
            records: list[tuple[bytes | None, bytes | None]] = []
            deadline = time.monotonic() + timeout_s
            while await consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{part.topic}:{part.partition} not read to its end ({end}) in {timeout_s:g} s")
                batch = await consumer.getmany(tp, timeout_ms=500)
                records += [(r.key, r.value) for r in batch.get(tp, [])]
            return records[-count:]
        finally:
            await consumer.stop()
