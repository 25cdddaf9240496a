"""Tiny hostile records (a non-finite number, a lone surrogate, a NUL byte, an object nested hundreds deep) are
one dead letter each, naming the limit and the field; the service neither crashes nor stalls, and keeps serving."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.polling import eventually
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


def _raw_suggestion(params: bytes) -> bytes:
    """A suggestion message whose params are written as raw JSON text (escapes and all), not by `json.dumps`."""
    return b'{"schema": "bridge.suggestion/v1", "study": "s", "template": "job", "suggestions": [{"params": %s}]}' % (
        params
    )


def _nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


async def test_each_hostile_record_is_one_dead_letter_and_the_service_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    hostile = {
        "non_finite_number": (_raw_suggestion(b'{"name": "inf", "sleep": 1e999}'), "suggestions[0].params.sleep"),
        "invalid_string": (_raw_suggestion(b'{"name": "\\ud800"}'), "suggestions[0].params.name"),
        "too_deep": (_raw_suggestion(b'{"name": "deep", "values": ' + _nested(600) + b"}"), None),
    }
    nul = _raw_suggestion(b'{"name": "nul\\u0000byte"}')
    async with running(settings) as service:
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [value for value, _ in hostile.values()] + [nul, suggestion("s", [{"name": "after"}])],
            key=b"s",
        )
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 4)
        # Nothing is left running or stuck: a NUL byte used to leave its run in flight for good.
        await eventually(lambda: service.in_flight == 0, timeout=30)
        # ... and the service still serves after all of them.
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "later"}])], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 4)

    assert [(r["params"]["name"], r["status"]) for r in results] == [("after", "succeeded"), ("later", "succeeded")]
    assert record_names(tmp_path) == ["after", "later"]
    assert len(letters) == 4  # exactly one each
    by_value = {base64.b64decode(m["value"]): m for m in letters}
    for kind, (value, field) in hostile.items():
        assert by_value[value]["error"]["type"] == kind
        if field is not None:
            assert by_value[value]["error"]["field"] == field
    deep = by_value[hostile["too_deep"][0]]["error"]["field"]
    assert deep.startswith("suggestions[0].params.values.a.a")
    nul_error = by_value[nul]["error"]
    assert (nul_error["type"], nul_error["field"]) == ("invalid_string", "suggestions[0].params.name")
    assert "NUL" in nul_error["message"]
