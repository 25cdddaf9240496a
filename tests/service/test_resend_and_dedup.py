"""A resent message is recognised by its deterministic ids and not run twice (once finished, it is answered with
copies marked `replayed`); identical params in flight run once; a cache hit is answered with cached=true."""

from __future__ import annotations

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


async def test_a_resent_message_is_not_run_twice(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    message = suggestion("s", [{"name": "once", "sleep": 0.5}, {"name": "twice", "sleep": 0.5}], iteration=7)
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [message, message], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
        # a third copy after the results exist is recognised too; a fresh message afterwards proves the
        # service has read past all copies before we count
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [message, suggestion("s", [{"name": "marker"}])],
            key=b"s",
        )
        results = await read_until(
            kafka_bootstrap,
            settings.topics.results,
            lambda ms: any(m.get("params", {}).get("name") == "marker" for m in ms),
            "bridge.result/v1",
        )
    names = sorted(r["params"]["name"] for r in results if not r["replayed"])
    assert names == ["marker", "once", "twice"]
    # the copy sent after the results exist is answered: a copy of each result, marked as a replay
    replays = [r for r in results if r["replayed"]]
    assert sorted(r["params"]["name"] for r in replays) == ["once", "twice"]
    originals = {r["run_id"]: r for r in results if not r["replayed"]}
    assert all(r["outputs"] == originals[r["run_id"]]["outputs"] for r in replays)
    executions = [json.loads(f.read_text())["name"] for f in (tmp_path / "record").glob("*.json")]
    assert sorted(executions) == ["marker", "once", "twice"]


async def test_identical_params_under_other_ids_run_once_and_later_hits_are_cached(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": "same", "sleep": 0.5, "values": "0.2"}] * 2, ids=["a", "b"])],
            key=b"s",
        )
        first = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": "same", "sleep": 0.5, "values": "0.2"}], ids=["c"])],
            key=b"s",
        )
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(3), "bridge.result/v1")
    assert sorted(r["cached"] for r in first) == [False, True]
    third = next(r for r in results if r["suggestion_id"] == "c")
    assert third["cached"] is True
    assert third["outputs"] == {"loss": 0.2}
    assert len(list((tmp_path / "record").glob("*.json"))) == 1
