"""Health that tells the truth: /healthz fails when consumption stalls with a backlog (aiokafka can hang
silently after a broker restart, aiokafka#1154); /readyz fails while the broker is gone."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_broker import KafkaBroker
from tests.polling import eventually
from tests.service.service_support import running, send_raw, service_settings, suggestion

pytestmark = pytest.mark.kafka


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_healthz_fails_when_the_consumer_returns_nothing_despite_a_backlog(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, http={"host": "127.0.0.1", "port": 0, "stall_after_s": 1})
    async with running(settings) as service:
        port = service.http_port
        assert port is not None
        await eventually(lambda: _status(port, "/healthz") == 200, timeout=60, in_thread=True)
        consumer: Any = service.consumer

        in_use = asyncio.Event()

        async def hung(*args: object, **kwargs: object) -> dict[object, object]:
            in_use.set()
            await asyncio.sleep(0.2)  # what a hung fetcher looks like from outside: nothing, forever
            return {}

        real = consumer.getmany
        consumer.getmany = hung
        await asyncio.wait_for(in_use.wait(), 30)  # the loop's last real poll is over: nothing reads any more
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "x"}])], key=b"s")
        await eventually(lambda: _status(port, "/healthz") == 503, timeout=60, in_thread=True)
        consumer.getmany = real
        await eventually(lambda: _status(port, "/healthz") == 200, timeout=60, in_thread=True)


async def test_readyz_fails_while_the_broker_is_gone(
    kafka_broker: KafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    if not getattr(kafka_broker, "can_restart", False):
        pytest.skip("the broker is external and cannot be restarted")
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings) as service:
        port = service.http_port
        assert port is not None
        await eventually(lambda: _status(port, "/readyz") == 200, timeout=60, in_thread=True)
        async with kafka_broker.outage():
            await eventually(lambda: _status(port, "/readyz") == 503, timeout=60, in_thread=True)
        await eventually(lambda: _status(port, "/readyz") == 200, timeout=120, in_thread=True)
