"""Every suggestion id of a readable message gets an answer on the real broker (CONTRACT.md section 3), and
`BridgeClient.answers` gives it to the optimizer that sent it: an invalid suggestion is refused with its reason
and field beside the record's one dead letter while the message's valid ones run, and the same id with other
params is refused as a conflict, under a run id of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.contract.messages import SuggestionMessage
from tests.service.service_support import count_results, read_until, record_names, running, service_settings

pytestmark = pytest.mark.kafka


def _message(study: str, params: list[dict[str, object]], ids: list[str]) -> SuggestionMessage:
    suggestions = [{"id": i, "params": p} for i, p in zip(ids, params, strict=True)]
    return SuggestionMessage.model_validate({"study": study, "template": "job", "suggestions": suggestions})


async def test_two_valid_and_one_invalid_suggestion_get_three_answers_and_one_dead_letter(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    message = _message("s", [{"name": "a"}, {"name": "b", "sleep": "abc"}, {"name": "c"}], ["a", "b", "c"])
    async with running(settings):
        async with BridgeClient(kafka=settings.kafka, topics=settings.topics) as client:
            sent = await client.submit_message(message)
            answers = await client.answers(sent, timeout=30)
            results = await client.results("s", ["a", "c"], timeout=60)
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)
        on_topic = await read_until(kafka_bootstrap, settings.topics.results, count_results(3), "bridge.result/v1")

    refused = answers["b"]
    assert refused.state == "refused"
    assert refused.reason is not None
    assert (refused.reason.type, refused.reason.field) == ("invalid_params", "suggestions[1].params.sleep")
    assert answers["a"].state in ("accepted", "succeeded") and answers["c"].state in ("accepted", "succeeded")
    assert answers["a"].run_id == results["a"].run_id
    assert {sid: r.status.value for sid, r in results.items()} == {"a": "succeeded", "c": "succeeded"}
    assert sorted((m["suggestion_id"], m["status"]) for m in on_topic) == [
        ("a", "succeeded"),
        ("b", "failed"),
        ("c", "succeeded"),
    ]
    failed = next(m for m in on_topic if m["suggestion_id"] == "b")
    assert failed["error"]["type"] == "invalid_params" and failed["error"]["field"] == "suggestions[1].params.sleep"
    assert [(m["error"]["type"], m["offset"]) for m in letters] == [("invalid_params", sent.offset)]
    assert record_names(tmp_path) == ["a", "c"]


async def test_the_same_id_with_other_params_is_answered_as_a_conflict(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        async with BridgeClient(kafka=settings.kafka, topics=settings.topics) as client:
            first = await client.submit_message(_message("s", [{"name": "a"}], ["x"]))
            assert (await client.answers(first, timeout=30))["x"].state in ("accepted", "succeeded")
            await client.results("s", ["x"], timeout=60)
            again = await client.submit_message(_message("s", [{"name": "other"}], ["x"]))
            answer = (await client.answers(again, timeout=30))["x"]
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)

    assert answer.state == "refused"
    assert answer.reason is not None and answer.reason.type == "conflicting_suggestion"
    assert answer.result is not None and answer.result.status.value == "failed"
    assert answer.run_id != again.run_id("x")  # the first params' run keeps its one final result
    assert [m["error"]["type"] for m in letters] == ["conflicting_suggestion"]
    assert record_names(tmp_path) == ["a"]
