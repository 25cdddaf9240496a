"""Reads one partition of a topic from where a sink stopped to its end (read_committed), a page at a time, so
memory stays bounded however many records the partition holds. The service reads its ledger this way."""

from __future__ import annotations

import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from bridge.config.settings import BridgeSettings
from bridge.kafka.base import PartitionSink
from bridge.kafka.connection import client_kwargs

log = structlog.get_logger(__name__)


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
