"""Waiting for something another process does: poll a condition until it holds, or fail at a deadline.

The tests' runs, replicas and brokers are other processes, so there is nothing to await; a deadline keeps a
broken condition from hanging the suite, and the poll interval is not a synchronisation. This is the suite's one
way to wait: `eventually` on the event loop (`reaches` for a probe's value), `wait_until` in plain threads.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> None:
    """Block until `predicate()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    interval: float = 0.05,
    in_thread: bool = False,
    what: str | Callable[[], str] = "condition not reached",
) -> None:
    """Wait on the event loop until `predicate()` holds, awaiting it when it is a coroutine function; `in_thread`
    for a predicate that blocks (HTTP). After `timeout` seconds the test fails with `what` (called then, so it
    can tell the last state seen). The predicate may raise to fail at once (a process that died meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        if in_thread:
            held = await asyncio.to_thread(predicate)
        else:
            held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"{what() if callable(what) else what} (after {timeout:g} s)"
        await asyncio.sleep(interval)


async def reaches(probe: Callable[[], Awaitable[T]], expected: T, *, timeout: float = 20.0) -> None:
    """Wait until `await probe()` returns `expected`; fail with the last value after `timeout` seconds."""
    got: list[T] = []

    async def equal() -> bool:
        got[:] = [await probe()]
        return got[0] == expected

    await eventually(equal, timeout=timeout, what=lambda: f"still {got[0]!r}, expected {expected!r}")
