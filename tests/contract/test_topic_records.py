"""One decoder per output topic (`bridge.contract.decoders`): what the service writes there is read back as its
message, and what cannot be read (a newer bridge's version, garbage) is told apart without raising."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.contract.decoders import Decoded, Unreadable, read_dead_letter, read_operation, read_result
from bridge.contract.messages import OperationCreated, OperationFinished
from bridge.contract.results import ProgressEvent, RunResult, RunStatus
from bridge.kafka.memory import MemoryBroker
from tests.service.memory_support import RESULT, FakeExecutor, memory_settings, serving, until
from tests.service.service_support import suggestion

_RESULT = {
    "schema": "bridge.result/v1",
    "study": "s",
    "operation_id": "op-1",
    "run_id": "run-1",
    "suggestion_id": "a",
    "index": 0,
    "params": {},
    "status": "succeeded",
    "outputs": {"loss": 0.1},
}


async def test_what_the_service_writes_each_decoder_reads_back(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    async with serving(settings, broker, FakeExecutor()):
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a"]), key=b"s")
        broker.send(settings.topics.suggestions, b"{not json", key=b"s")
        await until(broker, settings.topics.results, 1, RESULT)
        await until(broker, settings.topics.dead_letters, 1)
    results = [read_result(r.value) for r in broker.records(settings.topics.results)]
    finals = [r.message for r in results if isinstance(r, Decoded) and isinstance(r.message, RunResult)]
    assert [(f.study, f.suggestion_id, f.status) for f in finals] == [("s", "a", RunStatus.SUCCEEDED)]
    assert not [r for r in results if isinstance(r, Unreadable)]
    letters = [read_dead_letter(r.value) for r in broker.records(settings.topics.dead_letters)]
    assert [(d.message.error.type, d.message.value_bytes()) for d in letters if isinstance(d, Decoded)] == [
        ("invalid_json", b"{not json")
    ]
    events = [read_operation(r.value) for r in broker.records(settings.topics.operations)]
    kinds = [type(e.message) for e in events if isinstance(e, Decoded)]
    assert kinds[0] is OperationCreated and kinds[-1] is OperationFinished and len(kinds) == len(events)


def test_a_result_and_a_progress_event_are_told_apart() -> None:
    result = read_result(json.dumps(_RESULT).encode())
    progress = {"schema": "bridge.progress/v1", "operation_id": "op-1", "run_id": "run-1", "metrics": {"loss": 1.0}}
    event = read_result(json.dumps({**progress, "at": "2024-01-01T00:00:00Z"}).encode())
    assert isinstance(result, Decoded) and isinstance(result.message, RunResult)
    assert result.data == _RESULT  # as on the topic, for `--output jsonl`
    assert isinstance(event, Decoded) and isinstance(event.message, ProgressEvent)


def test_a_newer_versions_record_is_unreadable_and_says_to_upgrade() -> None:
    read = read_result(json.dumps({**_RESULT, "schema": "bridge.result/v2", "new": 1}).encode())
    assert isinstance(read, Unreadable) and read.newer and read.schema == "bridge.result/v2"
    assert str(read) == "bridge.result/v2: written by a newer bridge than this one; upgrade to read it"
    assert read.data is not None and read.data["run_id"] == "run-1"


def test_what_is_not_a_record_of_the_topic_is_unreadable_with_why() -> None:
    cases = {
        b"\xff not utf-8": "invalid_json",
        b"[1, 2]": "invalid_message",
        json.dumps({**_RESULT, "status": "maybe"}).encode(): "invalid_message",
        json.dumps({**_RESULT, "schema": "bridge.ledger/v9"}).encode(): "unknown_schema",
        json.dumps({**_RESULT, "schema": "bridge.deadletter/v1"}).encode(): "unknown_schema",
    }
    reads = {raw: read_result(raw) for raw in cases}
    assert {raw: r.reason for raw, r in reads.items() if isinstance(r, Unreadable)} == cases
    assert not any(r.newer for r in reads.values() if isinstance(r, Unreadable))
    tombstone = read_dead_letter(None)
    assert isinstance(tombstone, Unreadable) and not tombstone.newer
    assert isinstance(read_dead_letter(json.dumps(_RESULT).encode()), Unreadable)
