"""One `BridgeClient` for every thread of a study: started on first use, on an event loop of its own thread.

`study.optimize(objective, n_jobs=8)` calls the objective from eight threads at once, none of them with an event
loop. They share one client (one producer, one reader of the results topic): the client runs on this module's
loop thread, and each trial's thread hands it coroutines (`asyncio.run_coroutine_threadsafe`), as the client
expects of other threads. The first trial starts it; a bridge that cannot be reached within the connect timeout
is a `BridgeUnreachable` for that trial and every later one, until `close()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from bridge import logs
from bridge.client import BridgeClient
from bridge.config.settings import BridgeSettings
from bridge.errors import BridgeError

T = TypeVar("T")
_STOP_S = 30.0  # closing the client: its producer flushes, its reader stops


class BridgeUnreachable(BridgeError):
    """The broker, or the topics `bridge serve` creates, could not be reached within the connect timeout."""


class Connection:
    """A `BridgeClient` on a loop thread, shared by the threads that call `client()`, `run` and `submit`."""

    def __init__(
        self, settings: BridgeSettings, *, connect_timeout_s: float, client: BridgeClient | None = None
    ) -> None:
        """`client`: a started client to share instead (its owner stops it; its loop runs in another thread)."""
        self._settings = settings
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._shared = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: BridgeClient | None = None
        self._failure: BridgeUnreachable | None = None

    @property
    def where(self) -> str:
        """The broker, as the user named it."""
        return self._settings.kafka.bootstrap_servers

    def client(self) -> BridgeClient:
        """The started client; starts it the first time (raises `BridgeUnreachable` when it cannot)."""
        if self._shared is not None:
            return self._shared
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._client is None:
                self._client = self._start()
            return self._client

    def _start(self) -> BridgeClient:
        if not structlog.is_configured():
            logs.configure()  # as the bridge's commands log: warnings and up, on stderr (`BRIDGE_LOG_LEVEL`)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="bridge-optuna-client", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        client = BridgeClient(
            kafka=self._settings.kafka, topics=self._settings.topics, connect_timeout_s=self._connect_timeout_s
        )
        started = asyncio.run_coroutine_threadsafe(client.__aenter__(), loop)
        try:
            # The client gives up by itself after the connect timeout (twice: broker, then its topics).
            started.result(timeout=2 * self._connect_timeout_s + _STOP_S)
        except Exception as exc:
            started.cancel()
            why = str(exc) or type(exc).__name__
            self._failure = BridgeUnreachable(
                f"cannot reach the bridge at {self.where} within {self._connect_timeout_s:g} s: {why}"
            )
            self._halt()
            raise self._failure from exc
        return client

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the client's loop; its future, which a caller may wait on or cancel from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.client().loop)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float) -> T:
        """Run `coro` on the client's loop and wait for it, up to `timeout` seconds."""
        future = self.submit(coro)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the client and its loop; the next `client()` starts afresh."""
        with self._lock:
            client, self._client, self._failure = self._client, None, None
            if client is not None and self._loop is not None:
                stopped = asyncio.run_coroutine_threadsafe(client.__aexit__(None, None, None), self._loop)
                try:
                    stopped.result(timeout=_STOP_S)
                except Exception:  # closing: nothing more to do about a client that would not stop cleanly
                    stopped.cancel()
            self._halt()

    def _halt(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_STOP_S)
        if not thread.is_alive():
            loop.close()
