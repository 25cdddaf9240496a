"""`max_in_flight` bounds runs, not records: a message of many suggestions is taken whole only while there is room,
so at most `max_in_flight + max_suggestions_per_message - 1` runs are ever in flight, and each gets one result."""

from __future__ import annotations

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
    async with running(settings) as service:
        await send_raw(kafka_bootstrap, settings.topics.suggestions, messages, key=b"s")
        results = await read_until(
            kafka_bootstrap, settings.topics.results, count_results(len(names)), "bridge.result/v1", timeout=240
        )
        # counted once a later message is answered too, so that a duplicate published meanwhile would show
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "last"}])], key=b"s")
        results = await read_until(
            kafka_bootstrap, settings.topics.results, count_results(len(names) + 1), "bridge.result/v1"
        )
        peak = service.registry.peak  # every run taken in counts, however briefly: no sampling to miss one

    bound = MAX_IN_FLIGHT + PER_MESSAGE - 1
    assert peak <= bound, f"{peak} runs in flight, more than {bound}"
    assert peak >= PER_MESSAGE  # a whole message was taken while there was room
    got = [r["params"]["name"] for r in results if r["params"]["name"] != "last"]
    assert sorted(got) == sorted(names)  # all 120, exactly once each
    assert all(r["status"] == "succeeded" for r in results)
