"""The aiohttp application behind `HttpServer`: `/healthz`, `/readyz`, `/metrics`, GET and HEAD only.

Every answer, errors included, is a small body with an exact Content-Length and `Cache-Control: no-store` (a probe
or a scraper must see the state now, never a cached copy); errors are JSON `{"error": <reason phrase>}`, and a 405
names the allowed methods in `Allow`.

This module imports aiohttp at the top, so only `HttpServer.start()` imports it: `bridge --help` and
`bridge run` never pay for loading aiohttp.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from bridge.service.health import Health
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)

JSON_CONTENT_TYPE: Final = "application/json"


class _DropClientErrors(logging.Filter):
    """Drops the records of requests the client got wrong (already answered 400), keeping every other one."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


SERVER_LOGGER: Final = logging.getLogger("bridge.service.http.server")
"""The logger to give aiohttp's request handler in place of its own.

aiohttp logs each malformed request (a bad request line, a header past the limits) at ERROR with a traceback
after answering it 400; on a port anyone on the network can reach, that would let any client fill the logs.
"""
SERVER_LOGGER.addFilter(_DropClientErrors())


def build_app(health: Health, telemetry: Telemetry) -> web.Application:
    """The application: one GET route (HEAD comes with it) per endpoint, errors rendered as JSON."""
    endpoints = _Endpoints(health, telemetry)
    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/healthz", endpoints.healthz)
    app.router.add_get("/readyz", endpoints.readyz)
    app.router.add_get("/metrics", endpoints.metrics)
    return app


class _Endpoints:
    """The three handlers, reading the service's live `Health` and `Telemetry` on each request."""

    def __init__(self, health: Health, telemetry: Telemetry) -> None:
        self._health = health
        self._telemetry = telemetry

    async def healthz(self, _: web.Request) -> web.Response:
        ok, reason = self._health.healthy()
        if ok:
            return _json(HTTPStatus.OK, {"status": "ok"})
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "stalled", "reason": reason})

    async def readyz(self, _: web.Request) -> web.Response:
        ok, reason = self._health.ready()
        if ok:
            return _json(HTTPStatus.OK, {"status": "ok"})
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "not_ready", "reason": reason})

    async def metrics(self, _: web.Request) -> web.Response:
        # Telemetry renders with prometheus-client's generate_latest on its own registry, and names the format.
        body, content_type = self._telemetry.render()
        return _response(HTTPStatus.OK, body, content_type)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render the router's 404/405 and any handler failure as JSON errors, logging the failures."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as refused:
        allow = ", ".join(sorted(refused.allowed_methods))
        return _error(HTTPStatus(refused.status), {"Allow": allow})
    except web.HTTPException as http_error:
        return _error(HTTPStatus(http_error.status))
    except Exception:
        log.exception("http_handler_failed", path=request.path)
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR)


def _json(status: HTTPStatus, payload: Mapping[str, str]) -> web.Response:
    return _response(status, json.dumps(payload, separators=(",", ":")).encode(), JSON_CONTENT_TYPE)


def _error(status: HTTPStatus, headers: Mapping[str, str] | None = None) -> web.Response:
    response = _json(status, {"error": status.phrase})
    response.headers.update(headers or {})
    return response


def _response(status: HTTPStatus, body: bytes, content_type: str) -> web.Response:
    # The Content-Type goes in as a header, not `content_type=`: aiohttp refuses a charset inside that argument,
    # and the Prometheus type carries one.
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    return web.Response(status=status.value, body=body, headers=headers)
