"""What an operator reads and sends through Kafka: the dead letters (`bridge dlq`), and a stop through the control
topic, waiting for what it stopped (`bridge stop`). Both read committed records only, as the bridge wrote them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.messages import ControlMessage
from bridge.contract.versions import DEADLETTER, OPERATION, RESULT, current
from bridge.errors import BridgeError
from bridge.kafka.connection import client_kwargs, with_broker_retry


def _consumer(settings: BridgeSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_kwargs(settings.kafka), group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )


async def _start(consumer: AIOKafkaConsumer, settings: BridgeSettings, doing: str, timeout_s: float) -> None:
    await with_broker_retry(doing, consumer.start, give_up_after_s=timeout_s, servers=settings.kafka.bootstrap_servers)


async def _partitions(settings: BridgeSettings, *topics: str) -> list[TopicPartition]:
    """The partitions of `topics` that exist (a consumer's metadata covers only what it subscribed to)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d["error_code"] == 0
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


def _json(record: ConsumerRecord[Any, Any]) -> dict[str, Any] | None:
    try:
        data = json.loads(record.value)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def dead_letters(
    settings: BridgeSettings, *, follow: bool, limit: int | None, connect_timeout_s: float = 30.0
) -> AsyncIterator[dict[str, Any]]:
    """The dead letters from the topic's start: up to where it ends now, or on as they come with `follow`; at
    most `limit` of them."""
    consumer = _consumer(settings)
    try:
        await _start(consumer, settings, "read dead letters", connect_timeout_s)
        tps = await _partitions(settings, settings.topics.dead_letters)
        if not tps:
            return  # no topic yet: the bridge never served with this config
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        seen = 0
        while limit is None or seen < limit:
            if not follow and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    data = _json(record)
                    if data is None or data.get("schema") != current(DEADLETTER):
                        continue
                    yield data
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
    finally:
        await consumer.stop()


@dataclass
class Stopped:
    """What a stop came to: where the control message went, the final results of what it stopped that came
    within the wait, and the bridge's refusal of the message, if it refused it."""

    partition: int
    offset: int
    results: list[dict[str, Any]] = field(default_factory=list)
    refusal: DeadLetterError | None = None
    operation_finished: bool = False


def _stops(message: ControlMessage, data: dict[str, Any]) -> bool:
    if data.get("study") != message.study or data.get("replayed"):
        return False
    if message.action == "stop_operation":
        return data.get("operation_id") == message.operation_id
    if message.run_id is not None:
        return data.get("run_id") == message.run_id
    return data.get("suggestion_id") == message.suggestion_id


async def stop(
    settings: BridgeSettings, message: ControlMessage, *, wait_s: float, connect_timeout_s: float = 30.0
) -> Stopped:
    """Publish a control message, then wait up to `wait_s` for the final result of the run it stops (for an
    operation, its results until its `finished` event), or for the dead letter that refuses it."""
    topics = settings.topics
    consumer = _consumer(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all", enable_idempotence=True)
    try:
        await _start(consumer, settings, "follow results", connect_timeout_s)
        tps = await _partitions(settings, topics.results, topics.dead_letters, topics.operations)
        if not any(tp.topic == topics.results for tp in tps):
            raise BridgeError(f"topic {topics.results} does not exist (is `bridge serve` running with this config?)")
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # pin the positions before sending: what the stop causes comes after them
            await consumer.position(tp)
        await with_broker_retry(
            "send the stop", producer.start, give_up_after_s=connect_timeout_s, servers=settings.kafka.bootstrap_servers
        )
        sent = await producer.send_and_wait(topics.control, message.to_json().encode(), key=message.study.encode())
        out = Stopped(partition=sent.partition, offset=sent.offset)
        await _wait(consumer, message, out, wait_s, settings)
        return out
    finally:
        await producer.stop()
        await consumer.stop()


async def _wait(
    consumer: AIOKafkaConsumer, message: ControlMessage, out: Stopped, wait_s: float, settings: BridgeSettings
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=int(max(0.0, min(0.5, deadline - loop.time())) * 1000))
        for records in batches.values():
            for record in records:
                data = _json(record)
                if data is not None and _take(data, message, out, settings.topics.control):
                    return


def _take(data: dict[str, Any], message: ControlMessage, out: Stopped, control_topic: str) -> bool:
    """Note one record read after the stop was sent; True when nothing more is awaited."""
    schema = data.get("schema")
    if schema == current(DEADLETTER):
        if (data.get("topic"), data.get("partition"), data.get("offset")) != (control_topic, out.partition, out.offset):
            return False
        out.refusal = DeadLetterError.model_validate(data.get("error"))
        return True
    if schema == current(RESULT) and _stops(message, data):
        out.results.append(data)
        return message.action == "stop_run"
    if schema == current(OPERATION) and message.action == "stop_operation":
        finished = data.get("event") == "finished" and data.get("operation_id") == message.operation_id
        out.operation_finished = finished
        return finished
    return False
