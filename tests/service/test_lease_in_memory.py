"""Runs start before their ledger records commit, and a partition's next owner still counts every attempt
(bridge/service/ledger/lease.py): the real `BridgeService` on the in-memory broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.identity import run_id_of
from bridge.executors.base import EventCallback, RunSpec
from bridge.kafka.memory import MemoryBroker
from bridge.service import publishing
from bridge.service.ledger.lease import OWNER_KEY, owner_marker, owner_of
from tests.service.memory_support import (
    LEDGER,
    PLACE,
    RESULT,
    FakeExecutor,
    memory_settings,
    messages,
    name_of,
    serving,
    until,
)
from tests.service.service_support import suggestion


class WatchingExecutor(FakeExecutor):
    """Notes, as each run starts, what the broker has committed of it in the ledger."""

    def __init__(self, broker: MemoryBroker, ledger: str) -> None:
        super().__init__()
        self._broker = broker
        self._ledger = ledger
        self.committed_at_start: dict[str, list[tuple[str, int]]] = {}

    async def start(self, spec: RunSpec, on_event: EventCallback) -> Any:
        key = spec.run_id.encode()
        values = [json.loads(r.value) for r in self._broker.records(self._ledger) if r.key == key and r.value]
        states = [(v["state"], v.get("attempt", 0)) for v in values]
        self.committed_at_start[name_of(spec.render(PLACE))] = states
        return await super().start(spec, on_event)


def _owners(broker: MemoryBroker, ledger: str) -> dict[int, str | None]:
    """The last `~owner` marker of each ledger partition."""
    last: dict[int, str | None] = {}
    for r in broker.records(ledger):
        if r.key == OWNER_KEY.encode():
            owner = owner_of(r.value)
            last[r.partition] = owner.state if owner else None
    return last


async def test_a_first_attempt_starts_before_its_records_commit_and_its_result_follows_them(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    executor = WatchingExecutor(broker, settings.topics.ledger)
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "early"}], ids=["e1"]), key=b"s")
        results = await until(broker, topics.results, 1, RESULT)
    assert [(r["suggestion_id"], r["attempt"], r["status"]) for r in results] == [("e1", 1, "succeeded")]
    # Its attempt was not committed when its process started: no commit on the way to the start.
    assert list(executor.committed_at_start) == ["early"]
    assert ("dispatched", 1) not in executor.committed_at_start["early"]
    # ...and every record of it committed before (or with) its result: the ledger says the whole story.
    states = [(m["state"], m.get("attempt", 0)) for m in messages(broker, topics.ledger, LEDGER)]
    # Its grant in place of its `received` record (service/ledger/early_start.py), its attempt, its result's record.
    assert states[0] == ("dispatched", 0) and ("dispatched", 1) in states and states[-1] == ("finished", 1)


async def test_without_a_recent_commit_a_first_attempt_waits_for_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replica whose producer has not committed lately may have lost its partition without knowing: it waits.
    monkeypatch.setattr(publishing, "LEASE_S", 0.0)
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    executor = WatchingExecutor(broker, settings.topics.ledger)
    async with serving(settings, broker, executor):
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "late"}], ids=["l1"]), key=b"s")
        await until(broker, settings.topics.results, 1, RESULT)
    assert ("dispatched", 1) in executor.committed_at_start["late"]  # committed first, as before


def _seed(broker: MemoryBroker, ledger: str, name: str, record: Path, state: str) -> None:
    run_id = run_id_of("s", "job", name)
    body = {"schema": LEDGER, "run_id": run_id, "state": state, "study": "s", "template": "job"}
    params = {"name": name, "record": str(record)}
    value = json.dumps({**body, "suggestion_id": name, "given": {"name": name}, "params": params}).encode()
    broker.send(ledger, value, key=run_id.encode(), partition=0)


@pytest.mark.parametrize(
    ("marker", "granted_attempt", "read_attempt"),
    [
        (owner_marker("acquired", claim=1), 2, 2),  # died holding it, the record claimed: both may have run
        (owner_marker("acquired"), 2, 1),  # died holding it, no record claimed: only the granted run may have
        (owner_marker("released"), 1, 1),  # let go cleanly: whatever ran is in the ledger
    ],
)
async def test_the_next_owner_counts_a_first_attempt_a_dead_owner_may_have_made(
    tmp_path: Path, marker: bytes, granted_attempt: int, read_attempt: int
) -> None:
    """A partition whose owner died holding it (`acquired` is its last marker): a run it had granted an early
    start, and a suggestion record it had claimed, may have run with nothing recorded, so they run as attempt 2.
    A run it had only received never started: attempt 1. One let go cleanly (`released`): whatever ran is in the
    ledger, attempt 1. A suggestion sent after the takeover is attempt 1 always."""
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    _seed(broker, topics.ledger, "granted", tmp_path / "record", "dispatched")  # attempt 0: a grant
    _seed(broker, topics.ledger, "waiting", tmp_path / "record", "received")
    broker.send(topics.ledger, marker, key=OWNER_KEY.encode(), partition=0)
    broker.send(topics.suggestions, suggestion("s", [{"name": "read"}], ids=["read"]), key=b"s", partition=0)
    async with serving(settings, broker, executor):
        await until(broker, topics.results, 3, RESULT)
        broker.send(topics.suggestions, suggestion("s", [{"name": "after"}], ids=["after"]), key=b"s", partition=0)
        results = await until(broker, topics.results, 4, RESULT)
    assert sorted((r["suggestion_id"], r["attempt"]) for r in results) == sorted(
        [("granted", granted_attempt), ("waiting", 1), ("read", read_attempt), ("after", 1)]
    )
    assert sorted(executor.names) == ["after", "granted", "read", "waiting"]  # each ran once here
    # The assumed attempt is durable before anything else happens to the run: a third owner would count it too.
    # An assumed attempt 1 is in the ledger (a third owner counts it too), though attempt 1 never ran here.
    for name, attempt in (("granted", granted_attempt), ("read", read_attempt)):
        attempts = [m.get("attempt", 0) for m in messages(broker, topics.ledger, LEDGER) if m["suggestion_id"] == name]
        if attempt == 2:
            assert 1 in attempts and attempts.index(1) < attempts.index(2), (name, attempts)


async def test_a_drained_replica_releases_its_partitions_and_a_crashed_one_does_not(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    ledger = settings.topics.ledger
    async with serving(settings, broker, FakeExecutor()):
        assert set(_owners(broker, ledger).values()) == {"acquired"}
    partitions = broker.partitions(settings.topics.suggestions)
    assert _owners(broker, ledger) == dict.fromkeys(range(partitions), "released")
    # Past its grace a replica stops runs it cannot finish: it does not claim a clean hand-over.
    stuck = settings.model_copy(update={"shutdown_grace_s": 0})
    held = FakeExecutor(hold=True)
    async with serving(stuck, broker, held):
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "stuck"}], ids=["st"]), key=b"s")
        await until(broker, ledger, 2 + partitions * 3, None)  # received + dispatched, after the markers
    assert "acquired" in _owners(broker, ledger).values()


async def test_a_dead_owners_claim_past_the_end_counts_for_the_records_that_come_later(tmp_path: Path) -> None:
    """An owner claims suggestion records ahead of what it handled, also past the partition's end: paused, not
    dead, it may read and start them when it wakes. Its next owner counts attempt 1 as made for every record below
    the claim, those written after the takeover too; the first record past the claim is attempt 1."""
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    broker.send(topics.ledger, owner_marker("acquired", claim=2), key=OWNER_KEY.encode(), partition=0)
    broker.send(topics.suggestions, suggestion("s", [{"name": "read"}], ids=["read"]), key=b"s", partition=0)
    async with serving(settings, broker, executor):
        await until(broker, topics.results, 1, RESULT)
        for name in ("claimed", "after"):  # offsets 1 (below the claim) and 2
            broker.send(topics.suggestions, suggestion("s", [{"name": name}], ids=[name]), key=b"s", partition=0)
        results = await until(broker, topics.results, 3, RESULT)
    assert sorted((r["suggestion_id"], r["attempt"]) for r in results) == [("after", 1), ("claimed", 2), ("read", 2)]
