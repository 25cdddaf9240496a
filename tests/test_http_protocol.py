"""The HTTP responder itself: routing, methods, bounded requests, and clients that are slow or silent.

Raw asyncio streams, so the tests can send what a well-behaved client never would. Nothing sleeps: a test
waits for the server's answer or EOF, under a deadline that only fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bridge.http import Health, HttpServer
from bridge.telemetry import Telemetry

READ_TIMEOUT_S = 1.0
DEADLINE_S = 10.0  # a bound on waiting for the server, far above any expected answer time


Response = tuple[int, dict[str, str], bytes]


def parse(raw: bytes) -> Response:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status), headers, body


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(DEADLINE_S):
        return await reader.read()


async def exchange(server: HttpServer, raw: bytes) -> Response:
    """Send `raw`, read until the server closes, parse the response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        return parse(await read_to_eof(reader))
    finally:
        writer.close()
        await writer.wait_closed()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[HttpServer]:
    async with HttpServer(
        "127.0.0.1", 0, Health(), Telemetry(), read_timeout_s=READ_TIMEOUT_S, max_request_bytes=1024
    ) as running:
        yield running


async def test_port_zero_reports_the_port_it_got(server: HttpServer) -> None:
    assert server.port > 0
    status, _, _ = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


async def test_unknown_path_is_404(server: HttpServer) -> None:
    status, headers, body = await exchange(server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")

    assert status == 404
    assert json.loads(body) == {"error": "Not Found"}
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_with_allow(server: HttpServer, method: str) -> None:
    request = f"{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode()
    status, headers, body = await exchange(server, request)

    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert json.loads(body) == {"error": "Method Not Allowed"}


async def test_head_has_the_get_headers_and_no_body(server: HttpServer) -> None:
    _, get_headers, get_body = await exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n")
    status, headers, body = await exchange(server, b"HEAD /healthz HTTP/1.1\r\n\r\n")

    assert status == 200
    assert body == b""
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))


async def test_query_strings_and_bare_newlines_are_accepted(server: HttpServer) -> None:
    status, _, _ = await exchange(server, b"\r\nGET /healthz?verbose=1 HTTP/1.0\nHost: x\n\n")
    assert status == 200


@pytest.mark.parametrize(
    ("request_line", "expected"),
    [
        (b"GARBAGE", 400),
        (b"GET  HTTP/1.1", 400),
        (b"GET /healthz HTTP/2.0", 505),
        (b"G\xc3\xa9T / HTTP/1.1", 400),
    ],
)
async def test_malformed_requests_are_refused(server: HttpServer, request_line: bytes, expected: int) -> None:
    status, _, _ = await exchange(server, request_line + b"\r\n\r\n")
    assert status == expected


async def test_a_request_head_past_the_size_bound_is_431(server: HttpServer) -> None:
    one_long_line = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    many_lines = b"GET /healthz HTTP/1.1\r\n" + b"X-Small: aaaaaaaaaaaaaaaaaaaa\r\n" * 60 + b"\r\n"

    assert (await exchange(server, one_long_line))[0] == 431
    assert (await exchange(server, many_lines))[0] == 431


async def test_a_silent_client_is_dropped_after_the_read_timeout_without_blocking_others(
    server: HttpServer,
) -> None:
    loop = asyncio.get_running_loop()
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)
    connected_at = loop.time()
    try:
        status, _, _ = await exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n")
        served_at = loop.time()
        assert status == 200

        dropped = await read_to_eof(silent_reader)
        dropped_at = loop.time()
    finally:
        silent_writer.close()
        await silent_writer.wait_closed()

    assert parse(dropped)[0] == 408
    assert served_at < dropped_at  # the other client did not wait behind the silent one
    assert dropped_at - connected_at >= READ_TIMEOUT_S * 0.9  # held until the timeout, not refused at once


async def test_the_timeout_bounds_the_whole_head_not_each_line(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        await writer.drain()
        status, _, _ = parse(await read_to_eof(reader))
    finally:
        writer.close()
        await writer.wait_closed()

    assert status == 408


async def test_connections_past_the_limit_get_503() -> None:
    async with HttpServer("127.0.0.1", 0, Health(), Telemetry(), max_connections=1) as server:
        _, holder = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            status, _, _ = await exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n")
        finally:
            holder.close()
            await holder.wait_closed()

    assert status == 503


async def test_stop_drops_open_connections_and_stops_listening() -> None:
    server = HttpServer("127.0.0.1", 0, Health(), Telemetry(), read_timeout_s=60.0)
    await server.start()
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(DEADLINE_S):  # far below the 60 s read timeout
            await server.stop()
        assert await read_to_eof(reader) == b""
    finally:
        writer.close()
        await writer.wait_closed()

    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.stop()  # idempotent


async def test_port_before_start_and_double_start_are_errors() -> None:
    server = HttpServer("127.0.0.1", 0, Health(), Telemetry())
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    async with server:
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
