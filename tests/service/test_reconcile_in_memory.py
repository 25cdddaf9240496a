"""Reconciliation on the in-memory broker: what the ledger says decides what runs again, and nothing else does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.kafka.memory import MemoryBroker
from bridge.service.intake import run_id_of
from tests.service.memory_support import LEDGER, RESULT, FakeExecutor, memory_settings, messages, serving, until
from tests.service.service_support import suggestion


def _ledger(run_id: str, suggestion_id: str, **fields: Any) -> bytes:
    body = {
        "schema": "bridge.ledger/v1",
        "run_id": run_id,
        "state": "received",
        "study": "s",
        "template": "job",
    }
    return json.dumps({**body, "suggestion_id": suggestion_id, **fields}).encode()


async def test_a_received_ledger_record_runs_once_on_the_next_owner(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    run_id = run_id_of("s", "job", "left")
    record = str(tmp_path / "record")
    # What a replica that died right after taking the suggestion left behind: its offset committed, no result.
    value = _ledger(run_id, "left", given={"name": "left"}, params={"name": "left", "record": record})
    broker.send(settings.topics.ledger, value, key=run_id.encode(), partition=0)
    async with serving(settings, broker, executor):
        results = await until(broker, settings.topics.results, 1, RESULT)
    assert [(r["run_id"], r["attempt"], r["status"]) for r in results] == [(run_id, 1, "succeeded")]
    assert executor.names == ["left"]
    assert executor.reaped == []  # received, never dispatched: nothing can be left running


async def test_a_dispatched_run_runs_again_with_the_next_attempt_after_its_process_is_reaped(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, shutdown_grace_s=0)
    broker, first = MemoryBroker(settings), FakeExecutor(hold=True)
    async with serving(settings, broker, first):
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a"]), key=b"s")
        await until(broker, settings.topics.ledger, 2, LEDGER)  # received, then dispatched
    # Stopped past its grace: interrupted, so no result; the ledger still says dispatched.
    assert messages(broker, settings.topics.results, RESULT) == []
    # Another replica (its own disk) takes the partition over.
    third = FakeExecutor()
    same = settings.model_copy(update={"workdir": tmp_path / "replica2", "shutdown_grace_s": 5})
    async with serving(same, broker, third):
        results = await until(broker, settings.topics.results, 1, RESULT)
    assert [(r["params"]["name"], r["attempt"]) for r in results] == [("a", 2)]
    assert third.reaped == [results[0]["run_id"]]


async def test_a_finished_run_is_never_run_or_published_again(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, first = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, first):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a"]), key=b"s")
        await until(broker, topics.results, 1, RESULT)
    # Another replica, its own disk: it knows the run only from the ledger topic.
    second = FakeExecutor()
    replica = settings.model_copy(update={"workdir": tmp_path / "replica2"})
    async with serving(replica, broker, second):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a"]), key=b"s")
        broker.send(topics.suggestions, suggestion("s", [{"name": "m"}], ids=["m"]), key=b"s")
        results = await until(broker, topics.results, 3, RESULT)
    assert [(r["params"]["name"], r.get("replayed", False)) for r in results] == [
        ("a", False),
        ("a", True),
        ("m", False),
    ]
    assert second.names == ["m"]


async def test_a_forged_inline_ledger_record_is_refused_once_and_never_runs(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)  # allow_inline_operations is false
    broker = MemoryBroker(settings)
    topics = settings.topics
    inline = {
        "kind": "operation",
        "name": "evil",
        "component": {"kind": "component", "name": "evil", "run": {"kind": "job", "container": {"image": "x"}}},
    }
    evil_id = run_id_of("s", "job", "evil")
    broker.send(topics.ledger, _ledger(evil_id, "evil", operation=inline), key=evil_id.encode(), partition=0)
    executors = [FakeExecutor(), FakeExecutor()]
    for n, executor in enumerate(executors):
        replica = settings.model_copy(update={"workdir": tmp_path / f"replica{n}"})
        async with serving(replica, broker, executor):
            broker.send(topics.suggestions, suggestion("s", [{"name": f"m{n}"}]), key=b"s")
            await until(broker, topics.results, n + 1, RESULT)
    letters = messages(broker, topics.dead_letters)
    assert [(m["error"]["type"], m["topic"]) for m in letters] == [("invalid_ledger_record", topics.ledger)]
    assert letters[0]["error"]["message"].startswith("inline_operation_refused")
    assert [e.names for e in executors] == [["m0"], ["m1"]]
    # A tombstone: compaction removes the record, and the second replica never looked at it again.
    assert [r.value for r in broker.records(topics.ledger) if r.key == evil_id.encode()][1:] == [None]
