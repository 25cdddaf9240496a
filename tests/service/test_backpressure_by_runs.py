"""`max_in_flight` bounds runs, not records: a message of many suggestions is taken whole only while there is room,
so at most `max_in_flight + max_suggestions_per_message - 1` runs are ever in flight, and each gets one result."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tests.service.service_support import count_results, read_until, running, send_raw, service_settings, suggestion

pytestmark = pytest.mark.kafka

MAX_IN_FLIGHT = 4
PER_MESSAGE = 40
MESSAGES = 3


async def test_runs_in_flight_stay_bounded_by_runs(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, max_in_flight=MAX_IN_FLIGHT)
    names = [f"m{m}-r{r}" for m in range(MESSAGES) for r in range(PER_MESSAGE)]
    messages = [
        suggestion("s", [{"name": n, "sleep": 0.05} for n in names[m * PER_MESSAGE : (m + 1) * PER_MESSAGE]])
        for m in range(MESSAGES)
    ]
    seen: list[int] = []
    async with running(settings) as service:

        async def sample() -> None:
            # Runs last at least their 50 ms sleep, so a sample every few ms sees every peak.
            while True:
                seen.append(service.in_flight)
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        try:
            await send_raw(kafka_bootstrap, settings.topics.suggestions, messages, key=b"s")
            results = await read_until(
                kafka_bootstrap, settings.topics.results, count_results(len(names)), "bridge.result/v1", timeout=240
            )
            # counted once a later message is answered too, so that a duplicate published meanwhile would show
            await send_raw(
                kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "last"}])], key=b"s"
            )
            results = await read_until(
                kafka_bootstrap, settings.topics.results, count_results(len(names) + 1), "bridge.result/v1"
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    bound = MAX_IN_FLIGHT + PER_MESSAGE - 1
    assert max(seen) <= bound, f"{max(seen)} runs in flight, more than {bound}"
    assert max(seen) >= PER_MESSAGE  # a whole message was taken while there was room
    got = [r["params"]["name"] for r in results if r["params"]["name"] != "last"]
    assert sorted(got) == sorted(names)  # all 120, exactly once each
    assert all(r["status"] == "succeeded" for r in results)
