"""What the ledger topic says of every run, kept on disk so that memory does not grow with history.

The ledger topic is the truth; this SQLite file is a replica-local index of it, rebuilt or caught up from the
topic at each assignment (read_committed, from the offset indexed so far), so:
- a replay is recognised however long ago its run finished (no in-memory window), and answered with a copy of
  the final result the `finished` record carries;
- the same suggestion id with other params is recognised by the params' fingerprint;
- reconciliation takes unfinished runs a page at a time, as room allows, instead of all at once.

Beside the topic's state (`state`, `attempt`, `fingerprint`, `record`) each row has `local`: what this replica
did since the partition was last assigned (`active`: running or queued here; `finished`: published here). Local
notes are tentative (a transaction can still abort): every assignment clears them and catches up from the
topic, whose committed records then say what really happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from bridge.service.ledger.lease import OWNER_KEY, Owner

LocalState = Literal["active", "finished"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    partition INTEGER NOT NULL,
    state TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT,
    record BLOB,
    record_offset INTEGER,
    local TEXT,
    local_record BLOB
);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (partition, state) WHERE state != 'finished';
CREATE TABLE IF NOT EXISTS owners (
    partition INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    claim INTEGER
);
CREATE TABLE IF NOT EXISTS progress (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


_COLUMNS = "run_id, state, fingerprint, record, local, record_offset, local_record"


@dataclass(frozen=True)
class IndexedRun:
    """What the index knows of one run."""

    run_id: str
    state: str | None  # the ledger's: received, dispatched, finished; None when only this replica knows it
    fingerprint: str | None
    record: bytes | None  # the ledger record's value (for a finished run, the one carrying its result)
    local: LocalState | None
    offset: int | None = None  # the record's offset in the ledger partition
    local_record: bytes | None = None  # the `finished` record this replica published (tentative)

    @property
    def finished_record(self) -> bytes | None:
        """The `finished` ledger record that answers this run, if it has one."""
        if self.local == "finished":
            return self.local_record
        return self.record if self.state == "finished" else None


@dataclass(frozen=True)
class LedgerEntryIn:
    """One ledger record as the index takes it."""

    offset: int
    run_id: str
    state: str | None  # None: a tombstone
    attempt: int = 0
    fingerprint: str | None = None
    record: bytes | None = None
    claim: int | None = None  # an `~owner` marker's claim


class LedgerIndex:
    """The index file of one ledger topic, for one replica (a second process on the same workdir gets its own)."""

    def __init__(self, directory: Path, topic: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        base = f"{topic}.{socket.gethostname()}"
        self._lock: IO[bytes] | None = None
        path = directory / f"{base}.sqlite3"
        lock = _try_lock(directory / f"{base}.lock")
        if lock is None:  # another replica on this workdir holds it: a private, throw-away index
            path = directory / f"{base}.{os.getpid()}.sqlite3"
            path.unlink(missing_ok=True)
        self._lock = lock
        self.path = path
        self._topic = topic
        # Rebuildable from the topic at any time: durability of the file is not needed, speed is.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096;")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file (and free its lock); a private index is removed, nobody will read it again."""
        self._db.close()
        if self._lock is not None:
            self._lock.close()
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # ---- catching up with the topic ------------------------------------------------------------------

    def next_offset(self, partition: int) -> int:
        """Where reading the topic's partition goes on from (0: from its beginning)."""
        row = self._db.execute(
            "SELECT next_offset FROM progress WHERE topic=? AND partition=?", (self._topic, partition)
        ).fetchone()
        return int(row[0]) if row else 0

    def forget(self, partition: int) -> None:
        """Drop everything known of a partition (the topic was recreated or truncated)."""
        with self._transaction():
            self._db.execute("DELETE FROM runs WHERE partition=?", (partition,))
            self._db.execute("DELETE FROM owners WHERE partition=?", (partition,))
            self._db.execute("DELETE FROM progress WHERE topic=? AND partition=?", (self._topic, partition))

    def clear_local(self, partition: int) -> None:
        """Forget what this replica did on `partition`: it is being assigned again, the topic will tell."""
        self._db.execute(
            "UPDATE runs SET local=NULL, local_record=NULL WHERE partition=? AND local IS NOT NULL", (partition,)
        )

    def apply(self, partition: int, entries: Iterable[LedgerEntryIn], next_offset: int) -> None:
        """Take a page of committed records of `partition`, read up to `next_offset`."""
        with self._transaction():
            for e in entries:
                if e.run_id == OWNER_KEY:
                    self._owner(partition, e.state, e.claim)
                    continue
                if e.state is None:
                    self._db.execute("DELETE FROM runs WHERE run_id=?", (e.run_id,))
                    continue
                self._db.execute(
                    "INSERT INTO runs (run_id, partition, state, attempt, fingerprint, record, record_offset)"
                    " VALUES (?,?,?,?,?,?,?)"
                    " ON CONFLICT (run_id) DO UPDATE SET partition=excluded.partition, state=excluded.state,"
                    " attempt=excluded.attempt, fingerprint=COALESCE(excluded.fingerprint, runs.fingerprint),"
                    " record=excluded.record, record_offset=excluded.record_offset",
                    (e.run_id, partition, e.state, e.attempt, e.fingerprint, e.record, e.offset),
                )
            self._db.execute(
                "INSERT INTO progress (topic, partition, next_offset) VALUES (?,?,?)"
                " ON CONFLICT (topic, partition) DO UPDATE SET next_offset=excluded.next_offset",
                (self._topic, partition, next_offset),
            )

    def _owner(self, partition: int, state: str | None, claim: int | None) -> None:
        if state is None:  # a tombstone, or not a marker a bridge wrote: as if none
            self._db.execute("DELETE FROM owners WHERE partition=?", (partition,))
        else:
            self._db.execute(
                "INSERT INTO owners (partition, state, claim) VALUES (?,?,?)"
                " ON CONFLICT (partition) DO UPDATE SET state=excluded.state, claim=excluded.claim",
                (partition, state, claim),
            )

    def owner(self, partition: int) -> Owner | None:
        """What the partition's last `~owner` marker says (None: it has none): see `lease.py`."""
        row = self._db.execute("SELECT state, claim FROM owners WHERE partition=?", (partition,)).fetchone()
        return None if row is None else Owner(row[0], row[1])

    # ---- what this replica does ----------------------------------------------------------------------

    def get(self, run_id: str) -> IndexedRun | None:
        """The run's row, or None when the ledger never saw it."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else IndexedRun(*row)

    def note(
        self,
        partition: int,
        run_id: str,
        local: LocalState,
        fingerprint: str | None = None,
        record: bytes | None = None,
    ) -> None:
        """Record what this replica does with a run (tentative until the topic says so); `record` is the
        `finished` record it published."""
        self._db.execute(
            "INSERT INTO runs (run_id, partition, fingerprint, local, local_record) VALUES (?,?,?,?,?)"
            " ON CONFLICT (run_id) DO UPDATE SET local=excluded.local, local_record=excluded.local_record,"
            " fingerprint=COALESCE(runs.fingerprint, excluded.fingerprint)",
            (run_id, partition, fingerprint, local, record),
        )

    def note_many(self, partition: int, runs: Iterable[str | tuple[str, str | None]], local: LocalState) -> None:
        """`note` for many runs in one transaction; each a run id, or a run id and its params' fingerprint (so a
        conflict is recognised before the topic is read again)."""
        with self._transaction():
            for run in runs:
                run_id, print_ = (run, None) if isinstance(run, str) else run
                self.note(partition, run_id, local, fingerprint=print_)

    def unfinished(self, partition: int, limit: int) -> list[IndexedRun]:
        """Up to `limit` runs the ledger has as received or dispatched and that nobody here has taken."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM runs"
            " WHERE partition=? AND state != 'finished' AND local IS NULL ORDER BY rowid LIMIT ?",
            (partition, limit),
        ).fetchall()
        return [IndexedRun(*row) for row in rows]

    def counts(self, partition: int) -> dict[str, int]:
        """Runs of `partition` by ledger state, for the log."""
        rows = self._db.execute(
            "SELECT state, COUNT(*) FROM runs WHERE partition=? AND state IS NOT NULL GROUP BY state", (partition,)
        )
        return {str(state): int(n) for state, n in rows}

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle
