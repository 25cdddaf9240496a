"""The dash's HTTP guard, without a broker: read-only, loopback Host only when bound to loopback, the token (a
link's `?token=` becomes a cookie and leaves the address), and a Content-Security-Policy on every answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.dash.board import Board
from bridge.dash.feed import FeedStatus
from bridge.dash.web import COOKIE, build_app


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[TestClient[object, object]]:
    token = getattr(request, "param", None)
    changed = asyncio.Event()
    app = build_app(Board(), FeedStatus(caught_up=True), lambda: changed, token=token, loopback=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_pages_are_served_read_only_with_a_content_security_policy(client: TestClient[object, object]) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.post("/")).status == 405
    assert (await client.get("/static/dash.js")).status == 200
    assert (await client.get("/study?name=nope")).status == 404


async def test_a_foreign_host_is_refused_on_loopback(client: TestClient[object, object]) -> None:
    # A page of evil.example whose name was rebound to 127.0.0.1 sends its own Host: it is not answered.
    assert (await client.get("/", headers={"Host": "evil.example:8265"})).status == 421
    assert (await client.get("/", headers={"Host": "localhost:8265"})).status == 200


@pytest.mark.parametrize("client", ["t0ken"], indirect=True)
async def test_the_token_link_sets_a_cookie_and_leaves_the_address(client: TestClient[object, object]) -> None:
    assert (await client.get("/")).status == 401
    assert (await client.get("/readyz")).status == 200  # readiness tells nothing of the topics
    moved = await client.get("/study?name=s&token=t0ken", allow_redirects=False)
    assert moved.status == 303
    assert moved.headers["Location"] == "/study?name=s"
    cookie = moved.cookies[COOKIE]
    assert cookie.value == "t0ken" and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await client.get("/")).status == 200  # the client keeps the cookie, as a browser does
    client.session.cookie_jar.clear()
    assert (await client.get("/", headers={"Cookie": f"{COOKIE}=wrong"})).status == 401
    assert (await client.get("/", headers={"Authorization": "Bearer t0ken"})).status == 200
