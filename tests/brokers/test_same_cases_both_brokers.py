"""The same cases against both brokers, as FastStream does: the in-memory one proves the logic in milliseconds, the
real one (marked `kafka`) that the logic and Kafka agree."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.config.settings import BridgeSettings
from bridge.kafka.memory import MemoryBroker
from tests.service import memory_support as memory
from tests.service import service_support as real
from tests.service.service_support import suggestion


@dataclass
class Bus:
    """A broker to test the service on: its settings, how to send to it, read from it and serve on it."""

    settings: BridgeSettings
    send: Callable[[str, list[bytes], bytes], Awaitable[None]]
    read: Callable[[str, int, str | None], Awaitable[list[dict[str, Any]]]]
    serving: Callable[[], contextlib.AbstractAsyncContextManager[object]]


def _memory_bus(tmp_path: Path) -> Bus:
    settings = memory.memory_settings(tmp_path, batching={"linger_ms": 300, "max_configs": 64})
    broker = MemoryBroker(settings)

    async def send(topic: str, values: list[bytes], key: bytes) -> None:
        for value in values:
            broker.send(topic, value, key=key)

    async def read(topic: str, count: int, schema: str | None) -> list[dict[str, Any]]:
        return await memory.until(broker, topic, count, schema)

    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[object]:
        async with memory.serving(settings, broker, memory.FakeExecutor()) as service:
            yield service

    return Bus(settings, send, read, serving)


def _kafka_bus(bootstrap: str, tmp_path: Path) -> Bus:
    settings = real.service_settings(bootstrap, tmp_path, batching={"linger_ms": 300, "max_configs": 64})

    async def send(topic: str, values: list[bytes], key: bytes) -> None:
        await real.send_raw(bootstrap, topic, values, key=key)

    async def read(topic: str, count: int, schema: str | None) -> list[dict[str, Any]]:
        return await real.read_until(bootstrap, topic, lambda ms: len(ms) >= count, schema)

    return Bus(settings, send, read, lambda: real.running(settings))


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Bus:
    if request.param == "kafka":
        return _kafka_bus(request.getfixturevalue("kafka_bootstrap"), tmp_path)
    return _memory_bus(tmp_path)


async def test_each_suggestion_gets_one_result(bus: Bus) -> None:
    topics = bus.settings.topics
    async with bus.serving():
        await bus.send(topics.suggestions, [suggestion("s", [{"name": "a"}, {"name": "b"}], ids=["a", "b"])], b"s")
        results = await bus.read(topics.results, 2, "bridge.result/v1")
    assert sorted((r["suggestion_id"], r["status"]) for r in results) == [("a", "succeeded"), ("b", "succeeded")]


async def test_a_bad_record_is_one_dead_letter_and_the_loop_goes_on(bus: Bus) -> None:
    topics = bus.settings.topics
    async with bus.serving():
        await bus.send(topics.suggestions, [b"\xff not json", suggestion("s", [{"name": "after"}])], b"s")
        letters = await bus.read(topics.dead_letters, 1, None)
        results = await bus.read(topics.results, 1, "bridge.result/v1")
    assert [m["error"]["type"] for m in letters] == ["invalid_json"]
    assert [r["params"]["name"] for r in results] == ["after"]


async def test_messages_within_the_linger_share_an_operation_and_a_resent_one_is_replayed(bus: Bus) -> None:
    topics = bus.settings.topics
    async with bus.serving():
        first, second = suggestion("s", [{"name": "a"}], ids=["a"]), suggestion("s", [{"name": "b"}], ids=["b"])
        await bus.send(topics.suggestions, [first, second], b"s")
        results = await bus.read(topics.results, 2, "bridge.result/v1")
        await bus.send(topics.suggestions, [first], b"s")
        results = await bus.read(topics.results, 3, "bridge.result/v1")
    assert len({r["operation_id"] for r in results[:2]}) == 1
    assert [(r["suggestion_id"], r.get("replayed", False)) for r in results[2:]] == [("a", True)]
