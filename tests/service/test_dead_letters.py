"""Every bad message gets exactly one dead letter with its reason and field, and good ones keep flowing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.service.service_support import (
    count_results,
    read_until,
    running,
    send_raw,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


async def test_one_dead_letter_per_bad_message_of_each_kind(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    bad = {
        "invalid_json": b"{not json",
        "unknown_schema": json.dumps({"schema": "bridge.nope/v9", "study": "s"}).encode(),
        "unknown_template": suggestion("s", [{"name": "x"}], template="no-such-template"),
        "invalid_params": suggestion("s", [{"name": "ok"}, {"name": "bad", "sleep": "abc"}]),
        "inline_operation_refused": suggestion("s", [{"name": "x"}], operation={"kind": "operation"}),
        "invalid_message": json.dumps(
            {"schema": "bridge.suggestion/v1", "study": "s", "template": "job", "suggestions": []}
        ).encode(),
    }
    good = [suggestion("s", [{"name": f"good-{i}", "values": "0.1"}]) for i in range(3)]
    values = [good[0], *list(bad.values())[:3], good[1], *list(bad.values())[3:], good[2]]
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, values, key=b"s")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= len(bad))
        # The three readable messages answer each suggestion too (CONTRACT.md section 3), and `ok` runs.
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(7), "bridge.result/v1")
    assert sorted(m["error"]["type"] for m in letters) == sorted(bad)
    by_type = {m["error"]["type"]: m for m in letters}
    for kind, raw in bad.items():
        letter = by_type[kind]
        assert base64.b64decode(letter["value"]) == raw
        assert letter["topic"] == settings.topics.suggestions
        assert letter["schema"] == "bridge.deadletter/v1"
        assert base64.b64decode(letter["key"]) == b"s"
    assert by_type["invalid_params"]["error"]["field"] == "suggestions[1].params.sleep"
    assert by_type["unknown_template"]["error"]["field"] == "template"
    assert by_type["unknown_schema"]["error"]["field"] == "schema"
    answered = sorted((r["params"]["name"], r["status"], (r["error"] or {}).get("type")) for r in results)
    assert answered == [
        ("bad", "failed", "invalid_params"),
        ("good-0", "succeeded", None),
        ("good-1", "succeeded", None),
        ("good-2", "succeeded", None),
        ("ok", "succeeded", None),
        ("x", "failed", "inline_operation_refused"),
        ("x", "failed", "unknown_template"),
    ]
    # exactly one each: read again after everything settled
    again = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= len(bad))
    assert len(again) == len(bad)
