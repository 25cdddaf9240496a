"""/healthz follows consumption progress and /readyz follows readiness, over real HTTP on a free port.

The stall window is crossed by moving a fake clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message

import pytest
import pytest_asyncio

from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.telemetry import Telemetry


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


# No proxy: a developer's http_proxy must not intercept requests to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fetch(url: str) -> Reply:
    try:
        with _OPENER.open(url, timeout=10) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


async def get(server: HttpServer, path: str) -> Reply:
    """GET with the standard library's client, in a thread so the server keeps running on this loop."""
    return await asyncio.to_thread(_fetch, f"http://127.0.0.1:{server.port}{path}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(stall_after_s=30.0, clock=clock)


@pytest_asyncio.fixture
async def server(health: Health) -> AsyncIterator[HttpServer]:
    async with HttpServer("127.0.0.1", 0, health, Telemetry()) as running:
        yield running


async def test_healthz_is_ok_while_the_loop_beats(server: HttpServer, health: Health, clock: FakeClock) -> None:
    clock.advance(29.0)
    health.beat()
    clock.advance(29.0)

    reply = await get(server, "/healthz")

    assert reply.status == 200
    assert reply.json() == {"status": "ok"}
    assert reply.headers["Content-Type"] == "application/json"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert reply.headers["Connection"] == "close"


async def test_healthz_turns_503_past_the_stall_window_and_back_after_a_beat(
    server: HttpServer, health: Health, clock: FakeClock
) -> None:
    clock.advance(30.0)
    assert (await get(server, "/healthz")).status == 200  # at the window's edge: still within it

    clock.advance(0.5)
    stalled = await get(server, "/healthz")
    assert stalled.status == 503
    body = stalled.json()
    assert isinstance(body, dict)
    assert body["status"] == "stalled"
    assert "no consumption progress for 30.5s" in body["reason"]
    assert int(stalled.headers["Content-Length"]) == len(stalled.body)

    health.beat()
    recovered = await get(server, "/healthz")
    assert recovered.status == 200
    assert recovered.json() == {"status": "ok"}


async def test_readyz_follows_set_ready(server: HttpServer, health: Health) -> None:
    starting = await get(server, "/readyz")
    assert starting.status == 503
    assert starting.json() == {"status": "not_ready", "reason": "starting"}

    health.set_ready(True)
    ready = await get(server, "/readyz")
    assert ready.status == 200
    assert ready.json() == {"status": "ok"}

    health.set_ready(False, "partitions revoked")
    revoked = await get(server, "/readyz")
    assert revoked.status == 503
    assert revoked.json() == {"status": "not_ready", "reason": "partitions revoked"}


async def test_readiness_and_liveness_are_independent(server: HttpServer, health: Health, clock: FakeClock) -> None:
    health.set_ready(True)
    clock.advance(31.0)

    assert (await get(server, "/healthz")).status == 503
    assert (await get(server, "/readyz")).status == 200


def test_creation_counts_as_the_first_beat(clock: FakeClock) -> None:
    health = Health(stall_after_s=5.0, clock=clock)

    assert health.healthy() == (True, "ok")
    clock.advance(5.0)
    assert health.healthy()[0]
    clock.advance(0.1)
    assert not health.healthy()[0]


def test_healthy_takes_an_explicit_now(clock: FakeClock) -> None:
    health = Health(stall_after_s=10.0, clock=clock)

    assert health.healthy(now=clock.now + 10.0)[0]
    ok, reason = health.healthy(now=clock.now + 12.0)
    assert not ok
    assert reason == "no consumption progress for 12.0s (stall window 10s)"


def test_not_ready_without_a_reason_still_says_so() -> None:
    health = Health()
    health.set_ready(False)

    assert health.ready() == (False, "not ready")


@pytest.mark.parametrize("window", [0.0, -1.0])
def test_stall_window_must_be_positive(window: float) -> None:
    with pytest.raises(ValueError, match="stall_after_s"):
        Health(stall_after_s=window)
