"""Conflicts and replays are answered, not dropped: the same suggestion id with other params is a failed
`conflicting_suggestion` answer under a run id of its own, and a dead letter; a message sent again after its runs
finished is answered with copies marked `replayed` by whichever replica reads it, because the ledger topic (not a
replica's memory or disk) knows what finished."""

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
    send_record,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


async def test_the_same_id_with_other_params_while_it_runs_is_a_conflict(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(kafka_bootstrap, tmp_path)
    headers = [("trace-id", b"abc-123"), ("origin", b"optimizer-7")]
    async with running(settings):
        first = suggestion("s", [{"name": "a", "wait_for": str(gate)}], ids=["x"])
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [first], key=b"s")
        await eventually(lambda: record_names(tmp_path) == ["a"], timeout=60)
        conflicting = suggestion("s", [{"name": "ok"}, {"name": "b"}], ids=["y", "x"])
        await send_record(kafka_bootstrap, settings.topics.suggestions, conflicting, key=b"s", headers=headers)
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)
        await eventually(lambda: record_names(tmp_path) == ["a", "ok"], timeout=60)
        gate.touch()
        # a message after them proves everything before was handled before we count
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "marker"}])], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(4), "bridge.result/v1")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)

    answered = [(r["suggestion_id"], r["params"]["name"], r["status"], r["replayed"]) for r in results]
    assert sorted(a for a in answered if a[1] != "marker") == [
        ("x", "a", "succeeded", False),
        ("x", "b", "failed", False),
        ("y", "ok", "succeeded", False),
    ]
    assert len(results) == 4
    by_run: dict[str, int] = {}
    for r in results:
        by_run[r["run_id"]] = by_run.get(r["run_id"], 0) + 1
    assert set(by_run.values()) == {1}  # the conflict's answer is not a second final of `x`'s run
    assert record_names(tmp_path) == ["a", "marker", "ok"]  # `b` never ran
    assert len(letters) == 1
    letter = letters[0]
    assert base64.b64decode(letter["value"]) == conflicting
    assert (letter["error"]["type"], letter["error"]["field"]) == ("conflicting_suggestion", "suggestions[1].id")
    # the dead letter keeps the original record's headers
    assert [(h["key"], base64.b64decode(h["value"])) for h in letter["headers"]] == headers


async def test_the_same_id_with_other_params_after_it_finished_is_a_conflict(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "a"}], ids=["x"])])
        await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
        conflicting = suggestion("s", [{"name": "ok"}, {"name": "c"}], ids=["y", "x"])
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [conflicting])
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "marker"}])])
        results = await read_until(
            kafka_bootstrap,
            settings.topics.results,
            lambda ms: {"ok", "marker"} <= {m["params"]["name"] for m in ms},
            "bridge.result/v1",
        )

    assert sorted(
        (r["suggestion_id"], r["params"]["name"], r["status"]) for r in results if r["params"]["name"] != "marker"
    ) == [
        ("x", "a", "succeeded"),
        ("x", "c", "failed"),
        ("y", "ok", "succeeded"),
    ]  # no copy of `a`'s result answers `c`: a failed conflicting_suggestion answer does
    assert record_names(tmp_path) == ["a", "marker", "ok"]
    letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)
    assert [(m["error"]["type"], m["error"]["field"]) for m in letters] == [
        ("conflicting_suggestion", "suggestions[1].id")
    ]


async def test_a_message_sent_again_to_a_new_replica_is_answered_with_replays(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    message = suggestion("s", [{"name": "one", "values": "0.3"}, {"name": "two", "values": "0.4"}], iteration=2)
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [message], key=b"s")
        originals = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    # A new service in the same group, with a fresh workdir: no index, no cache, nothing in memory of the first.
    fresh = settings.model_copy(update={"workdir": tmp_path / "fresh-work"})
    async with running(fresh):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [message], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(4), "bridge.result/v1")
        # a message after the copy proves the copy was read to its end before we count what ran
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "marker"}])], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(5), "bridge.result/v1")

    assert record_names(tmp_path) == ["marker", "one", "two"]  # nothing ran twice
    assert [r["replayed"] for r in originals] == [False, False]
    replays = [r for r in results if r["replayed"]]
    assert sorted(r["params"]["name"] for r in replays) == ["one", "two"]
    first = {r["run_id"]: r for r in originals}
    for copy in replays:
        assert {k: v for k, v in copy.items() if k != "replayed"} == {
            k: v for k, v in first[copy["run_id"]].items() if k != "replayed"
        }
    assert sorted(r["params"]["name"] for r in results if not r["replayed"]) == ["marker", "one", "two"]
