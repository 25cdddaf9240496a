"""What the bridge writes always fits the broker: a huge invalid record gets a bounded dead letter (a prefix and its
place), a valid one whose ledger record would be too large is a dead letter, and neither stalls its partition."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from tests.kafka_broker import read_topic
from tests.service.service_support import (
    count_results,
    read_until,
    record_names,
    running,
    send_raw,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka

PROMPTLY_S = 30.0
"""Far below the 180 s a publisher used to retry a record the broker can never take, while the partition waited."""

DEAD_LETTER_OVERHEAD = 4096
"""The fields around a dead letter's base64 excerpt: its place, error, timestamps."""


async def test_a_900kb_invalid_record_gets_a_bounded_dead_letter(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    huge = b'{"schema": "bridge.suggestion/v1", "study": "s", "junk": "' + b"x" * 900_000  # never closed: not JSON
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [huge], key=b"s")
        sent = time.monotonic()
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "after"}])], key=b"s")
        results = await read_until(
            kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1", timeout=PROMPTLY_S
        )
        answered_in = time.monotonic() - sent
        letters = await read_topic(kafka_bootstrap, settings.topics.dead_letters, until=lambda rs: len(rs) >= 1)

    cap = settings.limits.max_excerpt_bytes
    assert results[0]["params"]["name"] == "after"
    assert answered_in < PROMPTLY_S
    assert len(letters) == 1
    assert len(letters[0].value) < cap * 4 / 3 + DEAD_LETTER_OVERHEAD  # base64 of the excerpt, plus its fields
    letter = json.loads(letters[0].value)
    assert letter["error"]["type"] == "invalid_json"
    assert letter["truncated"] is True
    assert letter["value_size"] == len(huge)
    assert base64.b64decode(letter["value"]) == huge[:cap]
    assert letter["topic"] == settings.topics.suggestions


async def test_a_valid_record_too_large_for_the_ledger_is_answered_and_a_dead_letter(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    # Valid under the default limits (no string past 64 Ki characters, under 1 MiB), about 850 KB: its ledger record
    # holds the params twice (as typed and as given) and the metadata once, about 1.1 MB, more than the broker takes.
    long = "0" * 65_536
    params = {"name": long, "record": long, "values": long, "wait_for": long}
    big = suggestion("s", [params], metadata={f"note{i}": "m" * 65_000 for i in range(9)})
    assert 800_000 < len(big) < settings.max_message_bytes
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [big], key=b"s")
        sent = time.monotonic()
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "after"}])], key=b"s")
        results = await read_until(
            kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1", timeout=PROMPTLY_S
        )
        answered_in = time.monotonic() - sent
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)

    # Every suggestion of a readable message is answered: this one failed, with why (its params left out of the
    # answer, which would be as large), the next one as usual.
    refused, after = results
    assert (refused["status"], refused["error"]["type"], refused["params"]) == ("failed", "record_too_large", {})
    assert refused["error"]["field"] == "suggestions[0]"
    assert (after["params"]["name"], after["status"]) == ("after", "succeeded")
    assert answered_in < PROMPTLY_S
    assert record_names(tmp_path) == ["after"]
    assert len(letters) == 1
    assert letters[0]["error"]["type"] == "record_too_large"
    assert letters[0]["error"]["field"] == "suggestions[0]"
    assert letters[0]["value_size"] == len(big)
