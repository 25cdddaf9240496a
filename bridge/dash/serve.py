"""`bridge dash` as a running thing: the feed and the web server in one process, until `stop()`.

The feed connects first, so an unreachable broker is one clear error before anything listens; then the pages are
served at once (they say how far the topics have been read) while the feed reads on.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

import structlog
from aiohttp import web

from bridge.config.settings import BridgeSettings
from bridge.dash.board import Board
from bridge.dash.feed import Feed
from bridge.dash.objective import Objective, objective_of_operation
from bridge.dash.web import build_app

log = structlog.get_logger(__name__)


def template_objectives(settings: BridgeSettings) -> dict[str, Objective]:
    """Each configured template's metric early stopping rule: a study's objective until its first operation
    event says otherwise."""
    out = {}
    for name, template in settings.templates.items():
        objective = objective_of_operation(template)
        if objective is not None:
            out[name] = objective
    return out


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dash:
    """The board, its feed and its web server."""

    def __init__(
        self,
        settings: BridgeSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 8265,
        token: str | None = None,
        keep_runs: int = 200,
    ) -> None:
        self.board = Board(keep_runs=keep_runs, template_objectives=template_objectives(settings))
        self.feed = Feed(settings, self.board)
        self._host, self._port, self._token = host, port, token
        self._stop = asyncio.Event()
        self.port: int | None = None  # the port bound, once serving (port 0: any free one)

    def stop(self) -> None:
        """Ask `run()` to return (from a signal handler too)."""
        self._stop.set()

    async def run(self, *, connect_timeout_s: float = 30.0, on_listening: Callable[[str], None] | None = None) -> None:
        """Serve until `stop()`; `on_listening` is told the dash's address once it listens."""
        try:
            await self.feed.start(connect_timeout_s=connect_timeout_s)
        except BaseException:
            await self.feed.stop()
            raise
        app = build_app(
            self.board, self.feed.status, lambda: self.feed.changed, token=self._token, loopback=is_loopback(self._host)
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        feeding = asyncio.create_task(self.feed.run())
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            server = site._server  # aiohttp exposes the bound port only here
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1] if sockets else self._port
            url = f"http://{self._host}:{self.port}/"
            log.info("dash_listening", url=url, token=self._token is not None)
            if on_listening is not None:
                on_listening(url)
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({stopped, feeding}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if feeding.done():
                feeding.result()  # the feed failed: its error is the dash's
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            await runner.cleanup()
            await self.feed.stop()
