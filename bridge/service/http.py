"""Health, readiness and metrics over HTTP: `/healthz`, `/readyz`, `/metrics`.

Served by aiohttp's web server (the routes are in `bridge.service.http_app`). A connection costs a socket and nothing
else until it sends a request, and there is no connection cap: the hand-written server this replaces answered
every connection past its 64th with an immediate 503, so 65 silent sockets made `/healthz` report a healthy pod
as unhealthy. Here a silent, idle or slow client is closed when its time runs out (`idle_timeout_s`, which bounds
both the wait for a complete request head and the idle gap between keep-alive requests), request heads are
bounded (`max_field_bytes` per line, `max_headers` lines; past either, 400), and none of it delays anyone else.

aiohttp is imported when the server starts, not with this module: the CLI imports `bridge.service.http` on every
command, and loading aiohttp would slow `bridge --help` for nothing.

What they report is `bridge.service.health.Health`, which the consume loop keeps up to date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import structlog

from bridge.service.health import Health
from bridge.service.telemetry import Telemetry

if TYPE_CHECKING:
    from aiohttp import web

log = structlog.get_logger(__name__)

# A request body nobody reads (a POST answered 405) is drained this long, so that closing with unread input
# does not make the kernel reset the connection before the client has read the answer.
_LINGER_S: Final = 1.0
# How long `stop()` lets a request being answered finish; the handlers answer from memory, so this is ample.
_SHUTDOWN_S: Final = 2.0


class HttpServer:
    """Serves `/healthz`, `/readyz` and `/metrics` on `host:port` until `stop()`.

    `port=0` picks a free port; `port` then reports the real one. A connection must deliver a complete request
    head within `idle_timeout_s` of connecting or of its previous answer (keep-alive), or it is closed; a request
    line or header longer than `max_field_bytes`, or more than `max_headers` headers, is answered 400.
    """

    def __init__(
        self,
        host: str,
        port: int,
        health: Health,
        telemetry: Telemetry,
        *,
        idle_timeout_s: float = 5.0,
        max_field_bytes: int = 8190,
        max_headers: int = 32,
    ) -> None:
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s}")
        self._host = host
        self._requested_port = port
        self._health = health
        self._telemetry = telemetry
        self._idle_timeout_s = idle_timeout_s
        self._max_field_bytes = max_field_bytes
        self._max_headers = max_headers
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (the first listening socket's); an error when not running."""
        addresses = self._runner.addresses if self._runner is not None else []
        if not addresses:
            raise RuntimeError("HttpServer is not started: call `await start()` first")
        port: int = addresses[0][1]
        return port

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._runner is not None:
            raise RuntimeError("HttpServer is already started")
        from aiohttp import web  # here, not at the top: see the module's docstring

        from bridge.service.http_app import SERVER_LOGGER, build_app

        runner = web.AppRunner(
            build_app(self._health, self._telemetry),
            handle_signals=False,  # the service owns SIGTERM/SIGINT and stops us as part of its drain
            access_log=None,  # a probe every few seconds is not news
            logger=SERVER_LOGGER,
            shutdown_timeout=_SHUTDOWN_S,
            keepalive_timeout=self._idle_timeout_s,
            lingering_time=_LINGER_S,
            max_line_size=self._max_field_bytes,
            max_field_size=self._max_field_bytes,
            max_headers=self._max_headers,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("http_server_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, close the open connections and wait until they are gone. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        log.info("http_server_stopped")

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
