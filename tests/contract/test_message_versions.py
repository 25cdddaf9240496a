"""Message versions live in one registry: what the bridge writes, what it reads, and what a newer bridge wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.contract import versions
from bridge.contract.codec import parse_message
from bridge.contract.messages import MessageError
from bridge.kafka.memory import MemoryBroker
from bridge.service.intake import run_id_of
from tests.service.memory_support import RESULT, FakeExecutor, memory_settings, messages, serving, until
from tests.service.service_support import suggestion


def test_every_family_has_one_current_schema_that_the_registry_reads() -> None:
    for family in (versions.SUGGESTION, versions.RESULT, versions.OPERATION, versions.LEDGER, versions.CONTROL):
        name = versions.current(family)
        assert name == f"{family}/v1"
        assert versions.is_known(name)


def test_a_newer_version_of_a_known_family_is_told_apart_from_garbage() -> None:
    assert versions.is_newer("bridge.ledger/v2")
    assert not versions.is_newer("bridge.ledger/v1")
    assert not versions.is_newer("bridge.nope/v9")
    assert not versions.is_newer(5)


def test_a_message_of_an_unknown_version_is_an_unknown_schema() -> None:
    raw = json.dumps({"schema": "bridge.suggestion/v2", "study": "s", "template": "t", "suggestions": []}).encode()
    with pytest.raises(MessageError) as caught:
        parse_message(raw)
    assert (caught.value.type, caught.value.field) == ("unknown_schema", "schema")


async def test_a_ledger_record_of_a_newer_version_is_kept_and_never_refused(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    run_id = run_id_of("s", "job", "from-the-future")
    record = {"schema": "bridge.ledger/v2", "run_id": run_id, "state": "received", "new_field": 1}
    broker.send(settings.topics.ledger, json.dumps(record).encode(), key=run_id.encode(), partition=0)
    async with serving(settings, broker, FakeExecutor()):
        # a suggestion answered after the reconcile: the ledger has been read by then
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a"]), key=b"s")
        await until(broker, settings.topics.results, 1, RESULT)
    # A rolling upgrade: an older replica leaves a newer replica's record alone (no dead letter, no tombstone).
    assert messages(broker, settings.topics.dead_letters) == []
    ledger = [r for r in broker.records(settings.topics.ledger) if r.key == run_id.encode()]
    assert [r.value is None for r in ledger] == [False]
