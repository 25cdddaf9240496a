"""Raw record bytes become a message, or a MessageError that names its type and the field at fault."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.contract.codec import parse_control, parse_message, parse_suggestion
from bridge.contract.messages import (
    ControlMessage,
    MessageError,
    OperationFinished,
    SuggestionMessage,
    field_path,
)
from bridge.errors import InvalidInput


def _suggestion(**fields: Any) -> bytes:
    message = {
        "schema": "bridge.suggestion/v1",
        "study": "s",
        "template": "t",
        "suggestions": [{"params": {}}],
    }
    return json.dumps({**message, **fields}).encode()


def _refused(raw: bytes, **kwargs: Any) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_message(raw, **kwargs)
    return caught.value


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{", b"", b'{"a": NaN}'])
def test_bytes_that_are_not_json_are_invalid_json(raw: bytes) -> None:
    error = _refused(raw)
    assert (error.type, error.field) == ("invalid_json", None)
    assert isinstance(error, InvalidInput)


@pytest.mark.parametrize("raw", [b'{"study": "s"}', b'{"schema": "bridge.suggestion/v9"}', b'{"schema": 1}'])
def test_a_missing_or_unknown_schema_is_unknown_schema(raw: bytes) -> None:
    error = _refused(raw)
    assert (error.type, error.field) == ("unknown_schema", "schema")


def test_a_schema_not_accepted_on_this_topic_is_unknown_schema() -> None:
    assert _refused(_suggestion(), accept={"bridge.control/v1"}).type == "unknown_schema"


def test_json_that_is_not_an_object_is_invalid_message() -> None:
    assert _refused(b"[1, 2]").type == "invalid_message"


def test_the_field_path_names_the_suggestion_and_key() -> None:
    raw = _suggestion(suggestions=[{"params": {}}, {"params": {"epochs": 1}, "extra": 1}])
    error = _refused(raw)
    assert (error.type, error.field) == ("invalid_message", "suggestions[1].extra")
    assert str(error) == "invalid_message: suggestions[1].extra: Extra inputs are not permitted"


def test_every_problem_is_kept_the_first_one_leads() -> None:
    error = _refused(_suggestion(study="no spaces", suggestions=[{"params": 3}]))
    assert [p.path for p in error.problems] == ["study", "suggestions[0].params"]
    assert error.field == "study"
    assert error.message.endswith("(and 1 more)")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "-x", "x" * 129, "naïve"])
def test_study_and_template_names_are_safe(name: str) -> None:
    assert _refused(_suggestion(study=name)).field == "study"
    assert _refused(_suggestion(template=name)).field == "template"


def test_a_message_needs_one_suggestion_and_at_most_the_cap() -> None:
    assert _refused(_suggestion(suggestions=[])).field == "suggestions"
    many = [{"params": {"i": i}} for i in range(1025)]
    assert _refused(_suggestion(suggestions=many)).field == "suggestions"
    three = _suggestion(suggestions=[{"params": {"i": i}} for i in range(3)])
    assert len(parse_suggestion(three, max_suggestions=3).suggestions) == 3
    error = _refused(three, max_suggestions=2)
    assert "at most 2 suggestions" in error.message


def test_ids_in_one_message_are_unique() -> None:
    error = _refused(_suggestion(suggestions=[{"id": "a", "params": {}}, {"id": "a", "params": {}}]))
    assert error.field == "suggestions"
    assert "suggestions[1]" in error.message


def test_a_message_over_the_byte_cap_is_refused_before_decoding() -> None:
    error = _refused(b"x" * 2048, max_bytes=1024)
    assert error.type == "message_too_large"


def test_a_suggestion_message_round_trips() -> None:
    message = parse_suggestion(_suggestion(iteration=2, metadata={"optimizer": "tpe"}, operation={"kind": "op"}))
    assert isinstance(message, SuggestionMessage)
    assert parse_message(message.to_json().encode()) == message
    assert json.loads(message.to_json())["schema"] == "bridge.suggestion/v1"


def test_the_suggestions_topic_takes_a_message_without_schema() -> None:
    raw = json.dumps({"study": "s", "template": "t", "suggestions": [{"params": {"shard": "p-1"}}]}).encode()
    assert parse_suggestion(raw).suggestions[0].params == {"shard": "p-1"}
    with pytest.raises(MessageError):
        parse_suggestion(json.dumps({"schema": "bridge.control/v1"}).encode())


def test_operation_events_are_told_apart_by_event() -> None:
    finished = {
        "schema": "bridge.operation/v1",
        "event": "finished",
        "study": "s",
        "template": "t",
        "operation_id": "op-1",
        "at": "2026-11-27T10:00:00Z",
        "counts": {"succeeded": 3, "skipped": 1},
        "early_stopping": {"kind": "metric_early_stopping", "reason": "loss <= 0.1"},
    }
    message = parse_message(json.dumps(finished).encode())
    assert isinstance(message, OperationFinished)
    assert message.counts.skipped == 1
    assert _refused(json.dumps({**finished, "event": "paused"}).encode()).field == "event"
    assert _refused(json.dumps({**finished, "at": "2026-11-27T10:00:00"}).encode()).field == "at"


@pytest.mark.parametrize(
    ("targets", "action", "valid"),
    [
        ({"run_id": "r"}, "stop_run", True),
        ({"suggestion_id": "t-17"}, "stop_run", True),
        ({"operation_id": "o"}, "stop_operation", True),
        ({"operation_id": "o"}, "stop_run", False),
        ({"run_id": "r", "suggestion_id": "t"}, "stop_run", False),
        ({}, "stop_operation", False),
    ],
)
def test_a_control_message_names_exactly_one_fitting_target(targets: dict[str, str], action: str, valid: bool) -> None:
    raw = json.dumps({"schema": "bridge.control/v1", "action": action, "study": "s", **targets}).encode()
    if valid:
        assert isinstance(parse_control(raw), ControlMessage)
    else:
        with pytest.raises(MessageError):
            parse_control(raw)


def test_field_path_renders_pydantic_locations() -> None:
    assert field_path(("suggestions", 1, "params", "epochs")) == "suggestions[1].params.epochs"
    assert field_path(("templates", "bad name", "[key]")) == "templates.bad name"
    assert field_path(()) == ""
