"""Health, readiness and metrics over HTTP: `/healthz`, `/readyz`, `/metrics`.

A deliberately small HTTP/1.1 responder on `asyncio.start_server`: GET and HEAD, one request per
connection (`Connection: close`), the request head bounded in size and read under one deadline, so a slow or
silent client costs one socket for at most `read_timeout_s` and never delays anyone else.

Liveness is consumption progress, not "the process answers": aiokafka's consumer can hang silently after a
broker restart, so the consume loop calls `Health.beat()` each time it polls the broker, and `/healthz` turns
503 when the beats stop for longer than the stall window.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlsplit

import structlog

from bridge.telemetry import Telemetry

log = structlog.get_logger(__name__)

JSON_CONTENT_TYPE: Final = "application/json"
_ALLOWED_METHODS: Final = ("GET", "HEAD")
# After the response: how long, and for how many bytes, a client may take to close its side.
_LINGER_S: Final = 1.0
_LINGER_MAX_BYTES: Final = 65536


class Health:
    """What `/healthz` and `/readyz` report: consumption progress and readiness, both set by the service.

    Creation counts as the first beat, so the service has `stall_after_s` to connect and poll for the first
    time. `clock` is any monotonic clock in seconds; tests pass a fake one instead of sleeping.
    """

    def __init__(self, *, stall_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_after_s <= 0:
            raise ValueError(f"stall_after_s must be positive, got {stall_after_s}")
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._last_beat = clock()
        self._ready = False
        self._ready_reason = "starting"

    def beat(self) -> None:
        """Record progress: the consume loop polled the broker (whether or not records came back)."""
        self._last_beat = self._clock()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Set readiness (connected and partitions assigned) and, when not ready, why."""
        self._ready = ready
        self._ready_reason = "ok" if ready else (reason or "not ready")

    def healthy(self, now: float | None = None) -> tuple[bool, str]:
        """`(True, "ok")` while the last beat is within the stall window at `now` (default: the clock)."""
        now = self._clock() if now is None else now
        silent_s = now - self._last_beat
        if silent_s > self.stall_after_s:
            window = f"{self.stall_after_s:g}s"
            return False, f"no consumption progress for {silent_s:.1f}s (stall window {window})"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """`(True, "ok")` once the service says it is ready, else `(False, reason)`."""
        return self._ready, self._ready_reason


@dataclass(frozen=True)
class _Response:
    status: HTTPStatus
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)


def _json(status: HTTPStatus, payload: Mapping[str, str]) -> _Response:
    return _Response(status, json.dumps(payload, separators=(",", ":")).encode())


def _error(status: HTTPStatus, **headers: str) -> _Response:
    return _Response(status, _json(status, {"error": status.phrase}).body, headers=headers)


class _BadRequest(Exception):
    """The request cannot be served; carries the response that says why."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status.phrase)
        self.response = response


@dataclass(frozen=True)
class _Request:
    method: str
    path: str


class HttpServer:
    """Serves `/healthz`, `/readyz` and `/metrics` until `stop()`.

    `port=0` picks a free port; `port` then reports the real one. The request head (request line and headers)
    may take at most `max_request_bytes` and must arrive within `read_timeout_s`; past `max_connections`
    concurrent clients, new ones get 503 at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        health: Health,
        telemetry: Telemetry,
        *,
        read_timeout_s: float = 5.0,
        max_request_bytes: int = 8192,
        max_connections: int = 64,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._health = health
        self._telemetry = telemetry
        self._read_timeout_s = read_timeout_s
        self._max_request_bytes = max_request_bytes
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}
        self._routes: dict[str, Callable[[], _Response]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }

    @property
    def port(self) -> int:
        """The port the server listens on (the first listening socket's); an error when not running."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HttpServer is not started: call `await start()` first")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("HttpServer is already started")
        self._server = await asyncio.start_server(
            self._serve, self._host, self._requested_port, limit=self._max_request_bytes
        )
        log.info("http_server_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, drop the connections still open and wait until they are gone. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Aborting (not cancelling) lets each handler end normally: Python 3.11's start_server logs an error
        # for a connection task that ends cancelled.
        for writer in self._connections:
            writer.transport.abort()
        await asyncio.gather(*self._connections.values(), return_exceptions=True)
        await server.wait_closed()
        log.info("http_server_stopped")

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("start_server runs each connection in a task of its own")
        self._connections[writer] = task
        try:
            if len(self._connections) > self._max_connections:
                response: _Response | None = _error(HTTPStatus.SERVICE_UNAVAILABLE)
                head_only = False
            else:
                response, head_only = await self._handle(reader)
            if response is not None:
                await self._send(writer, response, head_only=head_only)
            await self._linger(reader, writer)
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            del self._connections[writer]
            await self._close(writer)

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[_Response | None, bool]:
        """The response to one request (None when the client left without asking) and whether it is HEAD."""
        try:
            async with asyncio.timeout(self._read_timeout_s):
                request = await self._read_request(reader)
        except TimeoutError:
            return _error(HTTPStatus.REQUEST_TIMEOUT), False
        except asyncio.IncompleteReadError:
            return None, False
        except _BadRequest as bad:
            return bad.response, False
        return self._route(request), request.method == "HEAD"

    def _route(self, request: _Request) -> _Response:
        endpoint = self._routes.get(request.path)
        if endpoint is None:
            return _error(HTTPStatus.NOT_FOUND)
        if request.method not in _ALLOWED_METHODS:
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, Allow=", ".join(_ALLOWED_METHODS))
        try:
            return endpoint()
        except Exception:
            log.exception("http_handler_failed", path=request.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR)

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request:
        """Read the request head (no header is used); raise `_BadRequest` for what cannot be served."""
        lines: list[bytes] = []
        size = 0
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as overrun:
                raise _BadRequest(_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)) from overrun
            size += len(line)
            if size > self._max_request_bytes:
                raise _BadRequest(_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE))
            if line in (b"\r\n", b"\n"):
                if not lines:
                    continue  # RFC 9112 2.2: ignore empty lines before the request line
                break
            lines.append(line.rstrip(b"\r\n"))
        try:
            request_line = lines[0].decode("ascii")
        except UnicodeDecodeError as not_ascii:
            raise _BadRequest(_error(HTTPStatus.BAD_REQUEST)) from not_ascii
        return self._parse_request_line(request_line)

    @staticmethod
    def _parse_request_line(line: str) -> _Request:
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise _BadRequest(_error(HTTPStatus.BAD_REQUEST))
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise _BadRequest(_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED))
        return _Request(method=method.upper(), path=urlsplit(target).path)

    async def _send(self, writer: asyncio.StreamWriter, response: _Response, *, head_only: bool) -> None:
        status = response.status
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Cache-Control": "no-store",
            "Connection": "close",
            **response.headers,
        }
        head = f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        writer.write(head.encode("ascii") + (b"" if head_only else response.body))
        try:
            async with asyncio.timeout(self._read_timeout_s):
                await writer.drain()
        except TimeoutError:
            writer.transport.abort()  # a client that reads nothing holds no buffer of ours

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then read and drop what the client still sends until it closes too.

        Closing a socket with unread input makes the kernel reset the connection, which can destroy the
        response before the client has read it (a 503 past the connection limit, a 405 to a POST's body).
        """
        if writer.transport.is_closing() or not writer.can_write_eof():
            return
        writer.write_eof()
        discarded = 0
        try:
            async with asyncio.timeout(_LINGER_S):
                while discarded <= _LINGER_MAX_BYTES and (chunk := await reader.read(_LINGER_MAX_BYTES)):
                    discarded += len(chunk)
        except TimeoutError:
            pass  # the client keeps the connection open; the close below ends it

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(_LINGER_S):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            writer.transport.abort()

    def _healthz(self) -> _Response:
        ok, reason = self._health.healthy()
        if ok:
            return _json(HTTPStatus.OK, {"status": "ok"})
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "stalled", "reason": reason})

    def _readyz(self) -> _Response:
        ok, reason = self._health.ready()
        if ok:
            return _json(HTTPStatus.OK, {"status": "ok"})
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "not_ready", "reason": reason})

    def _metrics(self) -> _Response:
        body, content_type = self._telemetry.render()
        return _Response(HTTPStatus.OK, body, content_type=content_type)
