"""The on-disk index of the ledger topic: what a replica knows of every run without holding it in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.service.ledger.index import LedgerEntryIn, LedgerIndex


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LedgerIndex]:
    """An index on a fresh workdir, closed after the test (it holds the workdir's lock file open)."""
    opened = LedgerIndex(tmp_path, "ledger")
    yield opened
    opened.close()


def test_the_topic_state_survives_a_restart_and_reading_goes_on_where_it_stopped(tmp_path: Path) -> None:
    index = LedgerIndex(tmp_path, "ledger")
    index.apply(0, [LedgerEntryIn(0, "r1", "received", fingerprint="f1", record=b"{}")], next_offset=1)
    index.apply(0, [LedgerEntryIn(1, "r1", "finished", fingerprint="f1", record=b'{"result": {}}')], next_offset=2)
    index.close()

    again = LedgerIndex(tmp_path, "ledger")
    row = again.get("r1")
    assert row is not None
    assert (row.state, row.fingerprint, row.finished_record) == ("finished", "f1", b'{"result": {}}')
    assert again.next_offset(0) == 2
    assert again.next_offset(1) == 0
    again.close()


def test_unfinished_runs_come_a_page_at_a_time_and_once_taken_not_again(index: LedgerIndex) -> None:
    entries = [LedgerEntryIn(n, f"r{n}", "received", record=b"{}") for n in range(10)]
    entries.append(LedgerEntryIn(10, "r0", "finished", record=b"{}"))
    index.apply(3, entries, next_offset=11)

    first = index.unfinished(3, limit=4)
    assert [r.run_id for r in first] == ["r1", "r2", "r3", "r4"]
    index.note_many(3, [r.run_id for r in first], "active")
    assert [r.run_id for r in index.unfinished(3, limit=100)] == ["r5", "r6", "r7", "r8", "r9"]
    assert index.unfinished(2, limit=100) == []


def test_local_notes_are_tentative_until_the_topic_says_so(index: LedgerIndex) -> None:
    index.apply(0, [LedgerEntryIn(0, "r1", "received", record=b"{}")], next_offset=1)
    index.note(0, "r1", "finished", fingerprint="f1", record=b'{"result": {"x": 1}}')
    row = index.get("r1")
    assert row is not None and row.finished_record == b'{"result": {"x": 1}}'
    assert index.unfinished(0, limit=10) == []

    # The transaction that carried it aborted: the next assignment forgets the note and runs it again.
    index.clear_local(0)
    assert [r.run_id for r in index.unfinished(0, limit=10)] == ["r1"]
    row = index.get("r1")
    assert row is not None and row.finished_record is None


def test_a_run_known_only_locally_keeps_its_fingerprint_for_conflicts(index: LedgerIndex) -> None:
    index.note_many(1, [("r1", "f1")], "active")
    row = index.get("r1")
    assert row is not None
    assert (row.state, row.local, row.fingerprint) == (None, "active", "f1")


def test_a_tombstone_removes_the_run(index: LedgerIndex) -> None:
    index.apply(0, [LedgerEntryIn(0, "forged", "received", record=b"x")], next_offset=1)
    index.note(0, "forged", "finished")
    index.clear_local(0)
    index.apply(0, [LedgerEntryIn(1, "forged", None)], next_offset=2)
    assert index.get("forged") is None
    assert index.unfinished(0, limit=10) == []


def test_a_second_replica_on_the_same_workdir_gets_a_private_index_removed_at_close(tmp_path: Path) -> None:
    first = LedgerIndex(tmp_path, "ledger")
    second = LedgerIndex(tmp_path, "ledger")
    assert second.path != first.path
    second.apply(0, [LedgerEntryIn(0, "r1", "received")], next_offset=1)
    assert first.get("r1") is None
    second.close()
    assert not second.path.exists()
    first.close()
    assert first.path.exists()
