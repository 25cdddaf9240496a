"""What an operator reads and sends through Kafka: the dead letters (`bridge dlq`), and a stop through the control
topic, waiting for what it stopped (`bridge stop`). Both read committed records only, as the bridge wrote them, and
decode them with the topics' one decoder (`bridge.contract.decoders`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.contract.decoders import Decoded, Unreadable, read_dead_letter, read_operation, read_result
from bridge.contract.messages import ControlMessage, OperationFinished
from bridge.contract.results import RunResult
from bridge.errors import BridgeError
from bridge.kafka.lookups import Lookups
from bridge.kafka.reader import Record, TopicReader
from bridge.kafka.writer import TopicWriter


async def read_dead_letters(
    settings: BridgeSettings,
    *,
    follow: bool,
    limit: int | None,
    connect_timeout_s: float = 30.0,
    on_unreadable: Callable[[Unreadable], None] | None = None,
) -> AsyncGenerator[Decoded[DeadLetter], None]:
    """The dead letters from the topic's start: up to where it ends now, or on as they come with `follow`; at
    most `limit` of them. A record that is not a dead letter this bridge reads (a newer bridge's, or not one at
    all) is skipped, and handed to `on_unreadable`."""
    reader = TopicReader(settings.kafka)
    try:
        await reader.start("read dead letters", give_up_after_s=connect_timeout_s)
        async with Lookups(settings.kafka) as lookups:
            parts = await lookups.partitions(settings.topics.dead_letters)
        if not parts:
            return  # no topic yet: the bridge never served with this config
        await reader.assign(parts, at="beginning")
        ends = await reader.end_offsets(parts)
        seen = 0
        while limit is None or seen < limit:
            if not follow and not await reader.behind(ends):
                return
            for record in await reader.read(0.5):
                letter = read_dead_letter(record.value)
                if isinstance(letter, Unreadable):
                    if on_unreadable is not None:
                        on_unreadable(letter)
                    continue
                yield letter
                seen += 1
                if limit is not None and seen >= limit:
                    return
    finally:
        await reader.stop()


@dataclass
class Stopped:
    """What a stop came to: where the control message went, the final results of what it stopped that came
    within the wait (each as the JSON object on the topic), and the bridge's refusal of the message, if it
    refused it."""

    partition: int
    offset: int
    results: list[dict[str, Any]] = field(default_factory=list)
    refusal: DeadLetterError | None = None
    operation_finished: bool = False


def _stops(message: ControlMessage, result: RunResult) -> bool:
    """Whether `result` is of what `message` stops: its `stopped` result, or (replayed) the final result it
    already had when the stop came."""
    if result.study != message.study:
        return False
    if message.action == "stop_operation":
        return result.operation_id == message.operation_id
    if message.run_id is not None:
        return result.run_id == message.run_id
    return result.suggestion_id == message.suggestion_id


async def stop(
    settings: BridgeSettings, message: ControlMessage, *, wait_s: float, connect_timeout_s: float = 30.0
) -> Stopped:
    """Publish a control message, then wait up to `wait_s` for the final result of the run it stops (for an
    operation, its results until its `finished` event), or for the dead letter that refuses it."""
    topics = settings.topics
    reader = TopicReader(settings.kafka)
    writer = TopicWriter(settings.kafka)
    try:
        await reader.start("follow results", give_up_after_s=connect_timeout_s)
        async with Lookups(settings.kafka) as lookups:
            parts = await lookups.partitions(topics.results, topics.dead_letters, topics.operations)
        if not any(p.topic == topics.results for p in parts):
            raise BridgeError(f"topic {topics.results} does not exist (is `bridge serve` running with this config?)")
        await reader.assign(parts, at="end")  # positions pinned before sending: what the stop causes comes after
        await writer.start("send the stop", give_up_after_s=connect_timeout_s)
        sent = await writer.send(topics.control, message.to_json().encode(), key=message.study.encode())
        out = Stopped(partition=sent.partition, offset=sent.offset)
        await _wait(reader, message, out, wait_s, settings)
        return out
    finally:
        await writer.stop()
        await reader.stop()


async def _wait(
    reader: TopicReader, message: ControlMessage, out: Stopped, wait_s: float, settings: BridgeSettings
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        for record in await reader.read(min(0.5, deadline - loop.time())):
            if _take(record, message, out, settings):
                return


def _take(record: Record, message: ControlMessage, out: Stopped, settings: BridgeSettings) -> bool:
    """Note one record read after the stop was sent; True when nothing more is awaited. A record not readable
    is passed over: it cannot be what the stop awaits."""
    topics = settings.topics
    if record.topic == topics.dead_letters:
        return _refused(record, out, topics.control)
    if record.topic == topics.results:
        return _stopped(record, message, out)
    if record.topic == topics.operations and message.action == "stop_operation":
        event = read_operation(record.value)
        if isinstance(event, Unreadable):
            return False
        finished = isinstance(event.message, OperationFinished) and event.message.operation_id == message.operation_id
        out.operation_finished = finished
        return finished
    return False


def _refused(record: Record, out: Stopped, control_topic: str) -> bool:
    """A dead letter: the bridge's refusal of the stop when it names the control message sent."""
    letter = read_dead_letter(record.value)
    if isinstance(letter, Unreadable):
        return False
    source = (letter.message.topic, letter.message.partition, letter.message.offset)
    if source != (control_topic, out.partition, out.offset):
        return False
    out.refusal = letter.message.error
    return True


def _stopped(record: Record, message: ControlMessage, out: Stopped) -> bool:
    """A result: kept when it is of what the stop names; True when that was the one run stopped."""
    result = read_result(record.value)
    if isinstance(result, Unreadable) or not isinstance(result.message, RunResult):
        return False
    if not _stops(message, result.message):
        return False
    out.results.append(dict(result.data))
    return message.action == "stop_run"
