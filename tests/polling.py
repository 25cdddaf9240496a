"""Waiting for something another process does: poll a condition until it holds, or fail at a deadline.

The tests' runs, replicas and brokers are other processes, so there is nothing to await; a deadline keeps a
broken condition from hanging the suite, and the poll interval is not a synchronisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> None:
    """Block until `predicate()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05, in_thread: bool = False
) -> None:
    """Wait on the event loop until `predicate()` holds; `in_thread` for a predicate that blocks (HTTP)."""
    deadline = time.monotonic() + timeout
    while not (await asyncio.to_thread(predicate) if in_thread else predicate()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)
