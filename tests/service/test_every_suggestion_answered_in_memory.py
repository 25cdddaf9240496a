"""Every suggestion id of a readable message gets an answer on the results topic (CONTRACT.md section 3), on the
in-memory broker: an invalid one a failed `invalid_params` result beside the record's one dead letter, the same
id with other params a failed `conflicting_suggestion` result, and a resend of either a copy marked `replayed`.
The same on the real broker: tests/service/test_every_suggestion_answered.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.contract.dead_letters import DeadLetterError
from bridge.kafka.memory import MemoryBroker
from bridge.service.answers import refusal_result
from bridge.service.intake import Accepted, Refused, Templates, accept
from tests.polling import eventually
from tests.service.memory_support import RESULT, FakeExecutor, committed, memory_settings, messages, serving, until
from tests.service.service_support import suggestion


def _answers(results: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None, bool]]:
    return sorted(
        (
            r["suggestion_id"],
            r["status"],
            (r["error"] or {}).get("type"),
            (r["error"] or {}).get("field"),
            r["replayed"],
        )
        for r in results
    )


def test_intake_keeps_the_valid_suggestions_and_refuses_each_invalid_one_with_its_field(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    raw = suggestion("s", [{"name": "a"}, {"name": "b", "sleep": "abc"}, {"sleep": 1}], ids=["a", "b", "c"])
    outcome = accept(raw, Templates(settings), settings)
    assert isinstance(outcome, Accepted)
    assert [run.suggestion_id for run in outcome.runs] == ["a"]
    assert [(r.index, r.suggestion_id, r.error.type, r.error.field) for r in outcome.refused] == [
        (1, "b", "invalid_params", "suggestions[1].params.sleep"),
        (2, "c", "invalid_params", "suggestions[2].params.name"),
    ]
    assert outcome.dead_letter is not None
    assert (outcome.dead_letter.type, outcome.dead_letter.field) == ("invalid_params", "suggestions[1].params.sleep")


async def test_two_valid_and_one_invalid_suggestion_get_three_answers_and_one_dead_letter(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    message = suggestion("s", [{"name": "a"}, {"name": "bad", "sleep": "abc"}, {"name": "c"}], ids=["a", "b", "c"])
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, message, key=b"s")
        results = await until(broker, topics.results, 3, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 1, timeout=5, interval=0.005)
        # Sent again: every answer comes again as a copy, nothing runs again, the record is dead-lettered again.
        broker.send(topics.suggestions, message, key=b"s")
        again = await until(broker, topics.results, 6, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 2, timeout=5, interval=0.005)
    assert _answers(results) == [
        ("a", "succeeded", None, None, False),
        ("b", "failed", "invalid_params", "suggestions[1].params.sleep", False),
        ("c", "succeeded", None, None, False),
    ]
    refused = next(r for r in results if r["suggestion_id"] == "b")
    assert refused["params"] == {"name": "bad", "sleep": "abc"} and refused["attempt"] == 0
    assert sorted(executor.names) == ["a", "c"]
    letters = messages(broker, topics.dead_letters)
    assert [(m["error"]["type"], m["error"]["field"], m["offset"]) for m in letters] == [
        ("invalid_params", "suggestions[1].params.sleep", 0),
        ("invalid_params", "suggestions[1].params.sleep", 1),
    ]
    copies = again[3:]
    assert all(r["replayed"] for r in copies)
    assert {r["run_id"] for r in copies} == {r["run_id"] for r in results}  # never two finals for one run id
    assert sorted(executor.names) == ["a", "c"]


async def test_the_same_id_with_other_params_is_answered_as_a_conflict_once(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    conflicting = suggestion("s", [{"name": "other"}], ids=["x"])
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "first", "sleep": "abc"}], ids=["x"]), key=b"s")
        await until(broker, topics.results, 1, RESULT)
        # Corrected params under the refused id: that id already has its final answer, so it is a conflict.
        broker.send(topics.suggestions, conflicting, key=b"s")
        await until(broker, topics.results, 2, RESULT)
        broker.send(topics.suggestions, conflicting, key=b"s")
        results = await until(broker, topics.results, 3, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 3, timeout=5, interval=0.005)
    assert [(r["status"], r["error"]["type"], r["replayed"]) for r in results] == [
        ("failed", "invalid_params", False),
        ("failed", "conflicting_suggestion", False),
        ("failed", "conflicting_suggestion", True),
    ]
    assert results[1]["error"]["field"] == "suggestions[0].id"
    assert results[1]["run_id"] != results[0]["run_id"] and results[2]["run_id"] == results[1]["run_id"]
    assert executor.names == []
    letters = messages(broker, topics.dead_letters)
    assert [m["error"]["type"] for m in letters] == [
        "invalid_params",
        "conflicting_suggestion",
        "conflicting_suggestion",
    ]


async def test_an_unknown_template_answers_every_suggestion_of_the_message(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(
            topics.suggestions, suggestion("s", [{"a": 1}, {"a": 2}], template="nope", ids=["p", "q"]), key=b"s"
        )
        results = await until(broker, topics.results, 2, RESULT)
        letters = await until(broker, topics.dead_letters, 1)
    assert _answers(results) == [
        ("p", "failed", "unknown_template", "template", False),
        ("q", "failed", "unknown_template", "template", False),
    ]
    assert [m["error"]["type"] for m in letters] == ["unknown_template"]


def test_a_refusal_too_large_to_publish_keeps_its_reason_and_drops_what_was_sent() -> None:
    error = DeadLetterError(type="invalid_params", message="n: not an int", field="suggestions[0].params.n")
    refused = Refused(0, "run-1", "t-1", {"n": "abc", "items": ["x" * 1000] * 50}, error, metadata={"m": "y" * 9000})
    small = refusal_result(refused, "s", "job", max_bytes=1_000_000)
    assert small.params == refused.given and small.metadata == {"m": "y" * 9000}
    cut = refusal_result(refused, "s", "job", max_bytes=20_000)
    assert (cut.params, cut.metadata) == ({}, {})
    assert cut.error is not None
    assert (cut.status.value, cut.error.type, cut.error.field) == (
        "failed",
        "invalid_params",
        "suggestions[0].params.n",
    )
    assert len(cut.to_json()) < 10_000
