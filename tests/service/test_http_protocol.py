"""The HTTP server itself: routing, methods, bounded requests, keep-alive, and clients that are slow or silent.

Raw asyncio streams, so the tests can send what a well-behaved client never would. A test waits for the server's
answer or EOF under a deadline that only fails the test; the one loop that sleeps is a slow client's pace.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.telemetry import Telemetry

IDLE_TIMEOUT_S = 1.0
DEADLINE_S = 10.0  # a bound on waiting for the server, far above any expected answer time


Response = tuple[int, dict[str, str], bytes]


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    """Status, headers (lower-case names) and body of one HTTP/1.x response, its body sized by Content-Length."""
    async with asyncio.timeout(DEADLINE_S):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("ascii").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version in {"HTTP/1.0", "HTTP/1.1"}
        headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
        body = b"" if head_only else await reader.readexactly(int(headers["content-length"]))
    return int(status), headers, body


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(DEADLINE_S):
        return await reader.read()


async def exchange(server: HttpServer, raw: bytes, *, head_only: bool = False) -> Response:
    """Send `raw` on a new connection and read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await read_response(reader, head_only=head_only)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[HttpServer]:
    async with HttpServer(
        "127.0.0.1", 0, Health(), Telemetry(), idle_timeout_s=IDLE_TIMEOUT_S, max_field_bytes=1024, max_headers=32
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
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_with_allow(server: HttpServer, method: str) -> None:
    request = f"{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode()
    status, headers, body = await exchange(server, request)

    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert json.loads(body) == {"error": "Method Not Allowed"}


async def test_head_has_the_get_headers_and_no_body(server: HttpServer) -> None:
    _, get_headers, get_body = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status, headers, _ = await read_response(reader, head_only=True)
        assert await read_to_eof(reader) == b""  # nothing after the head: no body
    finally:
        writer.close()
        await writer.wait_closed()

    assert status == 200
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert headers["content-type"] == get_headers["content-type"]


async def test_query_strings_and_http_1_0_are_accepted(server: HttpServer) -> None:
    status, _, body = await exchange(server, b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE", b"GET  HTTP/1.1", b"G\xc3\xa9T / HTTP/1.1"],
)
async def test_malformed_requests_are_refused(server: HttpServer, request_line: bytes) -> None:
    status, _, _ = await exchange(server, request_line + b"\r\nHost: x\r\n\r\n")
    assert status == 400


async def test_a_request_head_past_the_size_bounds_is_refused(server: HttpServer) -> None:
    one_long_line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    many_lines = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Small: aaaaaaaaaaaaaaaaaaaa\r\n" * 60 + b"\r\n"
    long_target = b"GET /healthz?" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"

    assert (await exchange(server, one_long_line))[0] == 400
    assert (await exchange(server, many_lines))[0] == 400
    assert (await exchange(server, long_target))[0] == 400


async def test_bad_requests_do_not_write_tracebacks_to_the_log(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who can reach the port can send these; each one must not cost the operators a traceback."""
    caplog.set_level(logging.DEBUG)
    for raw in (
        b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    ):
        assert (await exchange(server, raw))[0] == 400

    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


class BrokenHealth(Health):
    def healthy(self, now: float | None = None) -> tuple[bool, str]:
        raise RuntimeError("health is broken")


async def test_a_failing_endpoint_is_a_logged_json_500_and_the_server_goes_on() -> None:
    async with HttpServer("127.0.0.1", 0, BrokenHealth(), Telemetry()) as server:
        with capture_logs() as logs:
            status, headers, body = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await exchange(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200

    assert status == 500
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "Internal Server Error"}
    assert [(log["event"], log["path"]) for log in logs] == [("http_handler_failed", "/healthz")]


async def test_keep_alive_serves_several_requests_then_closes_the_idle_connection(server: HttpServer) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for path in (b"/healthz", b"/metrics", b"/readyz"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status, _, _ = await read_response(reader)
            assert status in {200, 503}  # /readyz is 503 until the service says it is ready
        answered_at = loop.time()

        assert await read_to_eof(reader) == b""  # the server closes the idle connection
        closed_at = loop.time()
    finally:
        writer.close()
        await writer.wait_closed()

    assert closed_at - answered_at >= IDLE_TIMEOUT_S * 0.9  # after the idle timeout, not at once


async def test_a_silent_client_is_dropped_after_the_idle_timeout_without_blocking_others(
    server: HttpServer,
) -> None:
    loop = asyncio.get_running_loop()
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)
    connected_at = loop.time()
    try:
        status, _, _ = await exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        served_at = loop.time()
        assert status == 200

        dropped = await read_to_eof(silent_reader)
        dropped_at = loop.time()
    finally:
        silent_writer.close()
        await silent_writer.wait_closed()

    assert dropped == b""  # closed, nothing answered: it asked nothing
    assert served_at < dropped_at  # the other client did not wait behind the silent one
    assert dropped_at - connected_at >= IDLE_TIMEOUT_S * 0.9  # held until the timeout, not refused at once


async def test_the_timeout_bounds_the_whole_head_not_each_line(server: HttpServer) -> None:
    """A slowloris client sends one header line every fifth of the timeout and never finishes its head."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    connected_at = loop.time()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        eof = asyncio.ensure_future(read_to_eof(reader))
        while not eof.done() and loop.time() - connected_at < DEADLINE_S:
            writer.write(b"X-Slow: a\r\n")
            await writer.drain()
            await asyncio.wait([eof], timeout=IDLE_TIMEOUT_S / 5)  # the slow client's pace
        dropped = await eof
        dropped_at = loop.time()
    except ConnectionError:
        dropped, dropped_at = b"", loop.time()  # closed while we were still writing
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)

    assert dropped == b""
    assert dropped_at - connected_at < IDLE_TIMEOUT_S * 3  # each line did not buy it more time


async def test_stop_drops_open_connections_and_stops_listening() -> None:
    server = HttpServer("127.0.0.1", 0, Health(), Telemetry(), idle_timeout_s=60.0)
    await server.start()
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then kept alive
        await writer.drain()
        assert (await read_response(reader))[0] == 200
        async with asyncio.timeout(DEADLINE_S):  # far below the 60 s idle timeout
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
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_a_port_in_use_is_an_error_at_start() -> None:
    async with HttpServer("127.0.0.1", 0, Health(), Telemetry()) as first:
        second = HttpServer("127.0.0.1", first.port, Health(), Telemetry())
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        with pytest.raises(RuntimeError, match="not started"):
            _ = second.port
