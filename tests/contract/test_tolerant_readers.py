"""Readers of what the bridge writes ignore the fields they do not know (a newer bridge may add optional ones to a
v1 message); what the bridge takes in stays strict. A result's `warnings` is such a field: left out of the wire
form when empty, so a result without a warning is what every earlier v1 reader reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.contract.codec import parse_control, parse_suggestion
from bridge.contract.dead_letters import DeadLetter
from bridge.contract.decoders import Decoded, read_dead_letter, read_operation, read_result
from bridge.contract.jsonschema import message_schemas
from bridge.contract.messages import LedgerRecord, MessageError, OperationFinished
from bridge.contract.results import ProgressEvent, RunResult, RunStatus
from bridge.service.ledger.records import parse_record

_WARNING = "params.learnig_rate: the template `cnn` declares no `learnig_rate`; did you mean `learning_rate`?"
_V1_RESULT_FIELDS = {  # every field a result had before `warnings`
    *("schema", "study", "template", "operation_id", "run_id", "suggestion_id", "iteration", "index", "params"),
    *("status", "outputs", "attempt", "cached", "replayed", "started_at", "finished_at", "duration_s", "error"),
    "metadata",
}


def _result(**fields: Any) -> RunResult:
    base: dict[str, Any] = {"study": "s", "operation_id": "op", "run_id": "r", "index": 0, "params": {"lr": 1}}
    return RunResult(**{**base, "status": RunStatus.SUCCEEDED, **fields})


def _received() -> LedgerRecord:
    return LedgerRecord(run_id="r", state="received", study="s", template="cnn", suggestion_id="a")


def test_a_result_without_warnings_has_no_warnings_field_on_any_wire() -> None:
    result = _result()
    assert set(json.loads(result.to_json())) == _V1_RESULT_FIELDS
    finished = LedgerRecord.finished_from(_received(), result)
    assert finished.result is not None and set(finished.result) == _V1_RESULT_FIELDS
    assert "warnings" not in json.loads(finished.to_bytes())["result"]


def test_a_results_warnings_go_everywhere_it_goes_and_come_back() -> None:
    result = _result(warnings=[_WARNING])
    read = read_result(result.to_json().encode())
    assert isinstance(read, Decoded) and read.message == result
    finished = LedgerRecord.finished_from(_received(), result)
    assert finished.result is not None and finished.result["warnings"] == [_WARNING]
    replayed = RunResult.model_validate({**finished.result, "replayed": True})  # a resend's copy
    assert replayed.warnings == [_WARNING]


def test_the_result_schema_names_warnings_without_requiring_them() -> None:
    schema = message_schemas()["bridge.result.v1.json"]
    assert schema["properties"]["warnings"]["items"] == {"type": "string"}
    assert "warnings" not in schema["required"]
    assert set(schema["required"]) == _V1_RESULT_FIELDS
    assert "additionalProperties" not in schema  # a reader takes fields it does not know


def test_every_output_message_with_a_field_this_bridge_does_not_know_is_read() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    result = _result(warnings=[_WARNING])
    progress = ProgressEvent(operation_id="op", run_id="r", metrics={"loss": 1.0}, at=at)
    finished = OperationFinished(study="s", template="cnn", operation_id="op", at=at, counts={"succeeded": 1})
    letter = DeadLetter.of_record(
        topic="t", partition=0, offset=3, key=None, value=b"x", timestamp_ms=None, error=ValueError("x")
    )
    for message, read in (
        (result, read_result),
        (progress, read_result),
        (finished, read_operation),
        (letter, read_dead_letter),
    ):
        data = json.loads(message.model_dump_json(by_alias=True))
        data["from_a_newer_bridge"] = {"any": ["thing"]}
        for nested in ("error", "counts"):  # and inside its parts
            if isinstance(data.get(nested), dict):
                data[nested]["also_new"] = 1
        decoded = read(json.dumps(data).encode())
        assert isinstance(decoded, Decoded), decoded
        assert decoded.message == message
        assert decoded.data["from_a_newer_bridge"] == {"any": ["thing"]}  # as on the topic, for `--output jsonl`


@pytest.mark.parametrize(
    "parse",
    [
        lambda extra: parse_suggestion(
            json.dumps({"study": "s", "template": "t", "suggestions": [{"params": {}}], **extra}).encode()
        ),
        lambda extra: parse_control(
            json.dumps(
                {"schema": "bridge.control/v1", "action": "stop_run", "study": "s", "run_id": "r", **extra}
            ).encode()
        ),
        lambda extra: parse_record(json.dumps(json.loads(_received().to_bytes()) | extra).encode()),
    ],
    ids=["suggestion", "control", "ledger"],
)
def test_what_the_bridge_takes_in_still_refuses_a_field_it_does_not_know(parse: Any) -> None:
    with pytest.raises(MessageError) as caught:
        parse({"surprise": 1})
    assert (caught.value.type, caught.value.field) == ("invalid_message", "surprise")
