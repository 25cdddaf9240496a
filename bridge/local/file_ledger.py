"""Run ledgers: the durable record that lets an interrupted operation resume without running finished runs again.

`FileLedger` (used by `bridge run`) appends one JSON line per event to `<workdir>/operations/<id>/ledger.jsonl`,
written to the operating system before the scheduler goes on, so a `kill -9` of the bridge loses at most the
event being written. Reaching the disk is batched: one fsync, off the event loop, covers every line written
before it began, the next one starts when it ends, and `close()` waits for the last. A machine that loses power
loses at most the lines of the fsync under way: those runs run again on resume, as after an interrupt. (An
fsync per event took a quarter of `bridge run`'s time for 100 trivial runs, with the event loop blocked.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bridge.contract.results import RunResult
from bridge.engine.ports import LedgerEntry
from bridge.logs import get_logger

log = get_logger(__name__)


def _apply(entries: dict[str, LedgerEntry], record: Mapping[str, Any]) -> None:
    run_id = str(record["run_id"])
    before = entries.get(run_id, LedgerEntry(run_id=run_id))
    if record["event"] in ("starting", "dispatched"):  # `dispatched`: what ledgers of earlier versions wrote
        entries[run_id] = LedgerEntry(
            run_id=run_id, attempt=int(record["attempt"]), reattach_info=dict(record.get("info", {}))
        )
    elif record["event"] == "started":
        entries[run_id] = LedgerEntry(
            run_id=run_id,
            attempt=int(record["attempt"]),
            node_id=str(record["node_id"]),
            reattach_info=dict(record["info"]),
        )
    elif record["event"] == "finished":
        result = RunResult.model_validate(record["result"])
        entries[run_id] = LedgerEntry(
            run_id=run_id,
            attempt=max(before.attempt, result.attempt),
            node_id=before.node_id,
            reattach_info=before.reattach_info,
            result=result,
            interrupted=bool(record.get("interrupted", False)),
        )


class FileLedger:
    """An append-only JSON-lines ledger per operation under `root`."""

    def __init__(self, root: Path) -> None:
        self._root = root
        # Each operation's ledger stays open for appends from its first event to `close()`: opening it and making
        # its folder again for every event were two of the few system calls a run's events cost.
        self._files: dict[str, tuple[Path, TextIO]] = {}
        self._unsynced: set[Path] = set()  # ledgers with lines written since their last fsync began
        self._syncing: asyncio.Future[None] | None = None

    def __del__(self) -> None:
        # A ledger dropped without `close()` (a scheduler driven on its own, as tests do) still lets its files go:
        # each line is flushed when written, so closing here loses nothing.
        for _, file in getattr(self, "_files", {}).values():
            with contextlib.suppress(OSError):
                file.close()

    def path(self, operation_id: str) -> Path:
        """Where the operation's ledger lives."""
        return self._root / operation_id / "ledger.jsonl"

    def discard(self, operation_id: str) -> bool:
        """Forget the operation's resume state (`bridge run --fresh`); True if there was any.

        The whole file goes, not just what is read at the next start: were a fresh run interrupted in turn, its
        resume must not pick up results from before it.
        """
        if (opened := self._files.pop(operation_id, None)) is not None:
            opened[1].close()
        try:
            self.path(operation_id).unlink()
        except FileNotFoundError:
            return False
        log.info("ledger_discarded", operation_id=operation_id)
        return True

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]:
        entries: dict[str, LedgerEntry] = {}
        try:
            lines = self.path(operation_id).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return entries
        for number, line in enumerate(lines, start=1):
            try:
                _apply(entries, json.loads(line))
            except (ValueError, KeyError, TypeError):
                # The last line can be torn by a kill -9 mid-write; anything else torn is worth a warning too.
                log.warning("ledger_line_ignored", operation_id=operation_id, line=number)
        return entries

    def _append(self, operation_id: str, record: Mapping[str, Any]) -> None:
        opened = self._files.get(operation_id)
        if opened is None:
            path = self.path(operation_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            opened = self._files[operation_id] = (path, path.open("a", encoding="utf-8"))
        path, file = opened
        try:
            file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            file.flush()
        except OSError:
            # Not kept with a half-written line in its buffer: the next event opens the ledger afresh.
            del self._files[operation_id]
            with contextlib.suppress(OSError):
                file.close()
            raise
        # Flushed, so in the operating system: a kill -9 of this process cannot lose it. The disk comes next.
        self._unsynced.add(path)
        if self._syncing is None:
            self._sync_next()

    def _sync_next(self) -> None:
        """Start one fsync, in a worker thread, of every ledger written since the last one began."""
        paths, self._unsynced = list(self._unsynced), set()
        self._syncing = asyncio.get_running_loop().run_in_executor(None, _fsync_all, paths)
        self._syncing.add_done_callback(self._synced)

    def _synced(self, done: asyncio.Future[None]) -> None:
        """`done` ended: start the next fsync if lines were written meanwhile. Called by `done`'s callback and by
        `close()`, whichever comes first; the second call finds `done` no longer current and does nothing."""
        if self._syncing is not done:
            return
        self._syncing = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("ledger_fsync_failed", error=str(done.exception()))
        if self._unsynced:
            self._sync_next()

    async def close(self) -> None:
        """Wait until every line written is on disk, then close the ledgers (a later event opens its own again)."""
        while (syncing := self._syncing) is not None:
            await asyncio.wait([syncing])
            # Its done callback may not have run yet (it is only scheduled): without this, a done future would be
            # awaited again and again without the loop ever running that callback.
            self._synced(syncing)
        opened, self._files = list(self._files.values()), {}
        for _, file in opened:
            file.close()

    async def attempt_starting(self, operation_id: str, run_id: str, attempt: int) -> None:
        self._append(operation_id, {"event": "starting", "run_id": run_id, "attempt": attempt})

    async def attempt_started(
        self, operation_id: str, run_id: str, attempt: int, node_id: str, reattach: Mapping[str, Any]
    ) -> None:
        record = {"event": "started", "run_id": run_id, "attempt": attempt, "node_id": node_id, "info": dict(reattach)}
        self._append(operation_id, record)

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None:
        self._append(
            operation_id,
            {
                "event": "finished",
                "run_id": result.run_id,
                "interrupted": interrupted,
                "result": result.model_dump(mode="json", by_alias=True),
            },
        )


def _fsync_all(paths: list[Path]) -> None:
    # fsync syncs the file, whichever descriptor asks: this one is opened only for it.
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
