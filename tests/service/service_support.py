"""A real `BridgeService` on the session's real broker, with fresh topics and group per test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from bridge.app import build_service
from bridge.config.settings import BridgeSettings, load_settings
from bridge.service.service import BridgeService
from tests.engine_support import job_component
from tests.kafka_broker import read_topic
from tests.polling import eventually


def service_settings(bootstrap: str, root: Path, **overrides: Any) -> BridgeSettings:
    """Settings with uuid-named topics and group, the test job registered as template `job`."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    record = root / "record"
    template = {
        "component": job_component(),
        "matrix": {"kind": "mapping", "concurrency": 4},
        "params": {"record": {"value": str(record)}},
    }
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-group"},
        "topics": {
            name: f"{prefix}.{name}"
            for name in ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
        },
        "batching": {"linger_ms": 100, "max_configs": 64},
        "http": {"host": "127.0.0.1", "port": 0},
        "workdir": str(root / "work"),
        "templates": {"job": template},
        "shutdown_grace_s": 20,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = root / "bridge.yaml"
    path.write_text(json.dumps(data))
    return load_settings(path)


@contextlib.asynccontextmanager
async def running(settings: BridgeSettings) -> AsyncIterator[BridgeService]:
    """The service, serving until the block ends, then drained."""
    service = build_service(settings, connect_timeout_s=30)
    task = asyncio.create_task(service.run())

    def ready() -> bool:
        if task.done():
            task.result()  # it ended before it was ready: its error fails the test
        return service.health.ready()[0]

    await eventually(ready, timeout=60, what="the service never became ready")
    try:
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=90)


async def send_raw(bootstrap: str, topic: str, values: list[bytes], key: bytes = b"study") -> None:
    """Publish records as they are (good or malformed)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def suggestion(
    study: str,
    params_list: list[dict[str, Any]],
    *,
    template: str = "job",
    ids: list[str] | None = None,
    **fields: Any,
) -> bytes:
    """A `bridge.suggestion/v1` message's bytes."""
    suggestions = [{"params": p, **({"id": ids[i]} if ids else {})} for i, p in enumerate(params_list)]
    return json.dumps(
        {
            "schema": "bridge.suggestion/v1",
            "study": study,
            "template": template,
            "suggestions": suggestions,
            **fields,
        }
    ).encode()


def decoded(records: list[ConsumerRecord[bytes, bytes]], schema: str | None = None) -> list[dict[str, Any]]:
    out = [json.loads(r.value) for r in records]
    return [m for m in out if schema is None or m.get("schema") == schema]


async def read_until(
    bootstrap: str,
    topic: str,
    predicate: Callable[[list[dict[str, Any]]], bool],
    schema: str | None = None,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    records = await read_topic(bootstrap, topic, until=lambda rs: predicate(decoded(rs, schema)), timeout_s=timeout)
    return decoded(records, schema)


def count_results(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda ms: sum(1 for m in ms if m.get("schema") == "bridge.result/v1") >= n


async def send_record(
    bootstrap: str,
    topic: str,
    value: bytes | None,
    *,
    key: bytes,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> None:
    """Publish one record with headers, or to a chosen partition (a forged ledger record goes where the service
    reconciles it)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [], partition=partition)
    finally:
        await producer.stop()


def record_names(root: Path) -> list[str]:
    """The names of the test job's executions so far, one per execution (tests/scripts_job.py records them)."""
    return sorted(json.loads(f.read_text())["name"] for f in (root / "record").glob("*.json"))
