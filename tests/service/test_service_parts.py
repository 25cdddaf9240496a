"""The service's parts alone, without a broker or an event loop to speak of: offsets, room, ownership, admission."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.contract.identity import fingerprint
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.admission import admit
from bridge.service.intake import Accepted, Templates, accept
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ownership import Ownership
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem, received_record
from tests.service.memory_support import memory_settings
from tests.service.service_support import suggestion

P0 = Partition("suggestions", 0)
P1 = Partition("suggestions", 1)


def _accepted(tmp_path: Path, params_list: list[dict[str, str]], ids: list[str]) -> Accepted:
    settings = memory_settings(tmp_path)
    outcome = accept(suggestion("s", params_list, ids=ids), Templates(settings), settings)
    assert isinstance(outcome, Accepted)
    return outcome


def _items(accepted: Accepted) -> list[RunItem]:
    assert accepted.operation is not None
    operation = accepted.operation
    return [
        RunItem(
            run=run,
            operation=operation,
            source=P0,
            record=received_record(run, "s", "job", None, fingerprint(run.given)),
            offset=0,
        )
        for run in accepted.runs
    ]


def test_an_offset_is_committable_only_once_every_record_before_it_is_done() -> None:
    tracker = OffsetTracker()
    tracker.add(P0, 0, 2)  # a message of two suggestions
    tracker.add(P0, 1, 1)
    tracker.done(P0, 1)
    assert tracker.committable(P0) is None  # the slow first record holds the second back
    tracker.done(P0, 0)
    assert tracker.committable(P0) is None
    tracker.done(P0, 0)
    assert tracker.committable(P0) == 2
    assert tracker.committable(P0) is None  # handed out once
    tracker.add(P0, 2, 0)  # nothing to wait for (a control message)
    assert tracker.committable(P0) == 3


def test_a_partitions_committable_offset_waits_for_its_own_publisher_only() -> None:
    # Each partition's publisher takes its own offset: one partition's transaction must not take (and drop)
    # another's, whose record (a resend, a stop) then stayed uncommitted until more work came to it.
    tracker = OffsetTracker()
    tracker.add(P0, 0, 0)
    tracker.add(P1, 7, 0)
    assert tracker.committable(P0) == 1
    assert tracker.committable(P1) == 8


def test_a_revoked_partition_commits_nothing_of_what_it_had_pending() -> None:
    tracker = OffsetTracker()
    tracker.add(P1, 5, 1)
    tracker.revoke(P1)
    tracker.done(P1, 5)
    assert tracker.committable(P1) is None


async def test_room_is_counted_in_runs_and_a_finished_run_wakes_whoever_waits_for_it(tmp_path: Path) -> None:
    items = _items(_accepted(tmp_path, [{"name": "a"}, {"name": "b"}, {"name": "c"}], ["a", "b", "c"]))
    registry = RunRegistry(max_in_flight=2)
    for item in items:
        registry.add(item)
    assert registry.room == -1
    assert [i.run.run_id for i in registry.of_partition(P0)] == [i.run.run_id for i in items]
    waiting = asyncio.create_task(registry.wait_for_room(5))
    await asyncio.sleep(0)  # let it start waiting
    registry.pop(items[0].run.run_id)
    await asyncio.wait_for(waiting, 1)  # woken well before its 5 s
    assert registry.room == 0
    assert registry.pop("unknown") is None


async def test_ownership_through_a_revoke_and_the_assignment_that_follows() -> None:
    ownership = Ownership()
    assert ownership.assign({P0, P1}) == (set(), set())
    waiting = asyncio.create_task(ownership.wait_reconciled(P0))
    ownership.mark_reconciled(P0)
    await asyncio.wait_for(waiting, 1)
    assert ownership.owns(P0) and ownership.reconciled(P0) and not ownership.reconciled(P1)

    ownership.revoke({P0, P1})
    assert not ownership.owns(P0) and ownership.in_handover(P0)
    gap = asyncio.create_task(ownership.wait_gap(P1))
    back, gone = ownership.assign({P0})
    assert (back, gone) == ({P0}, {P1})
    assert not gap.done()  # until whoever assigns says the gaps are closed
    ownership.close_gaps(back | gone)
    await asyncio.wait_for(gap, 1)
    assert ownership.owns(P0) and not ownership.owns(P1) and not ownership.in_handover(P1)


async def test_a_partition_revoked_while_reconciling_wakes_its_waiting_records() -> None:
    ownership = Ownership()
    ownership.assign({P0})
    waiting = asyncio.create_task(ownership.wait_reconciled(P0))
    await asyncio.sleep(0)
    ownership.revoke({P0})
    await asyncio.wait_for(waiting, 1)
    assert not ownership.owns(P0)  # the record sees it is gone and leaves it to the next owner


def test_admission_sorts_runs_into_fresh_waiting_and_conflicting(tmp_path: Path) -> None:
    index = LedgerIndex(tmp_path / "ledger", "ledger")
    try:
        first = _accepted(tmp_path, [{"name": "a"}, {"name": "b"}], ["a", "b"])
        registry = RunRegistry(max_in_flight=8)
        registry.add(_items(first)[0])  # `a` is running here
        index.note(0, first.runs[1].run_id, "active", fingerprint="another-params-fingerprint")  # `b`, other params
        again = _accepted(tmp_path, [{"name": "a"}, {"name": "b"}, {"name": "c"}], ["a", "b", "c"])
        admission = admit(again, registry, index)
    finally:
        index.close()
    assert [run.suggestion_id for run, _ in admission.fresh] == ["c"]
    assert admission.waiting == 1
    assert [(c.index, c.suggestion_id, c.error.type) for c in admission.conflicts] == [
        (1, "b", "conflicting_suggestion")
    ]
    assert [refused for refused, _ in admission.answers] == admission.conflicts  # answered under their own run id
    assert admission.conflicts[0].run_id != again.runs[1].run_id
    assert admission.replays == []


async def test_a_partition_lost_for_good_wakes_whoever_waits_to_know_whether_it_comes_back() -> None:
    # A run waiting to publish its attempt's record for a partition between a revoke and the next assignment
    # holds its slot; fenced meanwhile, the partition never comes back, and the run must learn it (it used to
    # wait for good, every other run queued behind its slot).
    ownership = Ownership()
    ownership.assign({P0})
    ownership.revoke({P0})
    waiting = asyncio.ensure_future(ownership.wait_gap(P0))
    done, _ = await asyncio.wait({waiting}, timeout=0)  # one turn of the loop: it waits now
    assert not done
    ownership.drop(P0)
    await asyncio.wait_for(waiting, timeout=5)
    assert not ownership.owns(P0)
