"""A dead letter keeps the original record byte for byte and says why it was refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.contract.codec import parse_message, parse_suggestion
from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.contract.messages import MessageError
from bridge.errors import NotSupported, PolyaxonfileError, Problem


def test_the_original_key_and_value_come_back_exactly() -> None:
    letter = DeadLetter.of_record(
        topic="bridge.suggestions",
        partition=2,
        offset=41,
        key=b"\xffstudy",
        value=b'{"not json',
        timestamp_ms=1_764_237_600_000,
        error=MessageError("invalid_json", "not valid JSON"),
    )
    again = parse_message(letter.to_json().encode())
    assert again == letter
    assert isinstance(again, DeadLetter)
    assert (again.key_bytes(), again.value_bytes()) == (b"\xffstudy", b'{"not json')
    assert again.timestamp == datetime(2025, 11, 27, 10, 0, tzinfo=UTC)


def test_a_record_without_key_or_value_is_kept_as_null() -> None:
    letter = DeadLetter.of_record(
        topic="t", partition=0, offset=0, key=None, value=None, timestamp_ms=None, error=ValueError("x")
    )
    assert (letter.key_bytes(), letter.value_bytes(), letter.timestamp) == (None, None, None)
    assert letter.error.type == "unexpected_error"


def test_a_parse_error_becomes_the_dead_letters_error_as_it_is() -> None:
    with pytest.raises(MessageError) as caught:
        parse_suggestion(b'{"study": "s", "template": "t", "suggestions": [{"params": {}}, {"params": 1}]}')
    error = DeadLetterError.from_exception(caught.value)
    assert (error.type, error.field) == ("invalid_message", "suggestions[1].params")


def test_polyaxonfile_errors_keep_their_path() -> None:
    invalid = PolyaxonfileError("cnn", [Problem("matrix.values[3].epochs", "expected int")])
    assert DeadLetterError.from_exception(invalid).model_dump() == {
        "type": "invalid_operation",
        "message": "cnn: matrix.values[3].epochs: expected int",
        "field": "matrix.values[3].epochs",
    }
    unsupported = NotSupported("cnn", [Problem("hubRef", "not supported")])
    assert DeadLetterError.from_exception(unsupported).type == "not_supported"
