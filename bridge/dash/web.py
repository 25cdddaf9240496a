"""The dash's HTTP side: the pages, their JSON, the live event stream and the static files, on aiohttp.

Read-only (GET only). Guarded three ways: an optional token (a `?token=` link sets a cookie, or `Authorization:
Bearer`), a Host check when bound to loopback (a DNS-rebinding page cannot read it), and a Content-Security-Policy
that runs only the dash's own script. Pages come from `bridge/dash/pages.py`, already escaped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.dash import pages
from bridge.dash.board import Board
from bridge.dash.feed import FeedStatus

STATIC = Path(__file__).parent / "static"
COOKIE = "bridge_dash_token"
KEEPALIVE_S = 15.0
MIN_PUSH_S = 0.2  # at most five updates a second per page: a burst of results is one swap, not a thousand

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BOARD: web.AppKey[Board] = web.AppKey("board", Board)
STATUS: web.AppKey[FeedStatus] = web.AppKey("status", FeedStatus)
CHANGED: web.AppKey[Callable[[], asyncio.Event]] = web.AppKey("changed")
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("stopping", asyncio.Event)


def _guard(token: str | None, loopback: bool) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and request.host.rsplit(":", 1)[0] not in LOOPBACK_NAMES and request.host not in LOOPBACK_NAMES:
            return web.Response(status=421, text="this dash answers to 127.0.0.1 and localhost only\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="the dash is read-only\n")
        if token is not None and request.path != "/readyz":
            given = request.query.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                # Into a cookie, and off the address bar (and out of any Referer): the link is used once.
                rest = {k: v for k, v in request.query.items() if k != "token"}
                moved = web.HTTPSeeOther(str(request.rel_url.with_query(rest)))
                moved.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
                raise moved
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            cookie = request.cookies.get(COOKIE, "")
            if not any(hmac.compare_digest(c.encode(), token.encode()) for c in (bearer, cookie) if c):
                return web.Response(
                    status=401, text="this dash needs its token: open it with ?token=... (`bridge dash --token`)\n"
                )
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return guard


def _page(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    board = request.app[BOARD]
    fragment = request.query.get("fragment") == "1"
    body = pages.render(template, fragment=fragment, version=board.version, **context)
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Board-Version"] = str(board.version)
    return response


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), content_type="application/json", status=status)


def _missing(request: web.Request, what: str) -> web.Response:
    return _page(request, "missing.html", {"what": what}, status=404)


async def overview(request: web.Request) -> web.Response:
    """Every study, the dead letters of the last hour, the partitions and the lag."""
    return _page(request, "overview.html", pages.overview(request.app[BOARD], request.app[STATUS].as_dict()))


async def study(request: web.Request) -> web.Response:
    """One study: its plots and runs."""
    board = request.app[BOARD]
    name = request.query.get("name", "")
    view = board.studies.get(name)
    if view is None:
        return _missing(request, f"no study `{name}` on the topics (yet)")
    return _page(request, "study.html", pages.study_page(board, view, request.query.get("objective")))


async def run(request: web.Request) -> web.Response:
    """One run: its result, attempts, progress and how to get its logs."""
    board = request.app[BOARD]
    run_id = request.query.get("id", "")
    view = board.find_run(run_id)
    if view is None:
        return _missing(request, f"no run `{run_id}` among the runs kept (the last {board.keep_runs} per study)")
    return _page(request, "run.html", pages.run_page(board, view))


async def dead_letters(request: web.Request) -> web.Response:
    """The recent dead letters."""
    return _page(request, "dead_letters.html", pages.letters_page(request.app[BOARD]))


async def api_studies(request: web.Request) -> web.Response:
    """The overview as JSON."""
    return _json(pages.overview(request.app[BOARD], request.app[STATUS].as_dict()))


async def api_study(request: web.Request) -> web.Response:
    """A study as JSON (its plots left out: they are pictures)."""
    board = request.app[BOARD]
    view = board.studies.get(request.query.get("name", ""))
    if view is None:
        return _json({"error": "no such study"}, status=404)
    data = pages.study_page(board, view, request.query.get("objective"))
    data.pop("plots")
    return _json(data)


async def api_run(request: web.Request) -> web.Response:
    """A run as JSON."""
    board = request.app[BOARD]
    view = board.find_run(request.query.get("id", ""))
    return _json({"error": "no such run"}, status=404) if view is None else _json(pages.run_page(board, view))


async def api_dead_letters(request: web.Request) -> web.Response:
    """The recent dead letters as JSON."""
    return _json(pages.letters_page(request.app[BOARD]))


async def readyz(request: web.Request) -> web.Response:
    """200 once the topics were read up to where they ended when the dash started."""
    status = request.app[STATUS]
    return _json(status.as_dict(), status=200 if status.caught_up else 503)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the board's version each time it moves (throttled), a comment now and then."""
    board, stopping = request.app[BOARD], request.app[STOPPING]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    sent = -1
    last = 0.0
    while not stopping.is_set():
        if board.version != sent:
            await asyncio.sleep(max(0.0, last + MIN_PUSH_S - time.monotonic()))  # throttle, not a synchronisation
            sent = board.version
            last = time.monotonic()
            await response.write(f"data: {sent}\n\n".encode())
            continue
        changed = request.app[CHANGED]()
        waiters = {asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stopping.wait())}
        done, pending = await asyncio.wait(waiters, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not done:
            await response.write(b": keepalive\n\n")
    return response


def build_app(
    board: Board,
    status: FeedStatus,
    changed: Callable[[], asyncio.Event],
    *,
    token: str | None = None,
    loopback: bool = True,
) -> web.Application:
    """The dash's application; `changed()` gives the event set when the board next moves."""
    app = web.Application(middlewares=[_guard(token, loopback)])
    app[BOARD] = board
    app[STATUS] = status
    app[CHANGED] = changed
    app[STOPPING] = asyncio.Event()

    async def stop_streams(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(stop_streams)
    app.router.add_get("/", overview)
    app.router.add_get("/study", study)
    app.router.add_get("/run", run)
    app.router.add_get("/dead-letters", dead_letters)
    app.router.add_get("/events", events)
    app.router.add_get("/api/studies", api_studies)
    app.router.add_get("/api/study", api_study)
    app.router.add_get("/api/run", api_run)
    app.router.add_get("/api/dead-letters", api_dead_letters)
    app.router.add_get("/readyz", readyz)
    app.router.add_static("/static", STATIC, show_index=False, follow_symlinks=False)
    return app
