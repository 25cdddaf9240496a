"""The scheduler's `RunLedger` port for `serve`, backed by the ledger topic."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from bridge.contract.results import RunResult
from bridge.engine.ports import LedgerEntry
from bridge.errors import Fenced, HandedOver
from bridge.kafka.base import Outgoing
from bridge.kafka.offsets import Partition
from bridge.service.ledger.early_start import EarlyStarts
from bridge.service.ledger.lease import Queue
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem

log = structlog.get_logger(__name__)

Publish = Callable[[Partition, Outgoing], Awaitable[None]]


class TopicLedger:
    """The scheduler's `RunLedger` for `serve`. Each attempt gets a `dispatched` ledger record as it starts, and
    another with where it runs and how to find it again once it has (queued, not waited for); `finished` goes out
    with the result (see `Operations.finish_run`), so here it does nothing.

    A granted first attempt (`early_start.py`) starts as soon as its record is queued: the record commits in the
    next transaction, always before the result, and a kill -9 before then is what the partition's next owner
    assumes of a granted run (`lease.py`). Any other attempt (a retry, a run taken over, one not granted) waits for
    its record's commit before it starts, so an owner never has more than one attempt of a run unrecorded."""

    def __init__(
        self,
        registry: RunRegistry,
        ledger_topic: str,
        publish: Publish,
        on_lost: Callable[[str], None],
        *,
        queue: Queue | None = None,
        early: EarlyStarts | None = None,
        exactly_once: bool = True,
    ) -> None:
        self._items = registry
        self._topic = ledger_topic
        self._publish = publish
        self._queue = queue
        self.early = early
        self._exactly_once = exactly_once  # False: benchmarks only (see `BridgeService`)
        self._on_lost = on_lost
        self.prior_attempts: dict[str, LedgerEntry] = {}
        self._starting: dict[str, Outgoing] = {}  # the queued record of an attempt starting early, by run id

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]:
        # Runs reconciled from the ledger: re-attached to their last attempt, or started at its number + 1.
        return dict(self.prior_attempts)

    async def attempt_starting(self, operation_id: str, run_id: str, attempt: int) -> None:
        """Record the attempt (durably, or queued when granted); raises `HandedOver` when the run is not this
        replica's any more, so that nothing starts that its next owner would start too."""
        if not self._exactly_once:
            return
        item = self._items.get(run_id)
        if item is None:
            raise HandedOver(f"run {run_id} left this replica before its attempt {attempt} started")
        out = self._dispatched(item, attempt, {})
        # Granted (`early_start.py`): queued, it commits before anything else of the run, and before any
        # `released` marker; a crash before then is what the next owner assumes of a granted run.
        granted = attempt == 1 and self.early is not None and await self.early.may_start(item)
        self._still_ours(item, attempt)
        if granted and self._queue is not None and self._queue(item.source, out) is not None:
            self._starting[run_id] = out
            return
        if not await self._durably(run_id, item.source, out):
            raise HandedOver(f"{item.source} belongs to another replica: attempt {attempt} of {run_id} not recorded")
        # Recorded, but handed over while its record waited (its partition came back after another replica had
        # it): the ledger counts this attempt, and it does not start here.
        self._still_ours(item, attempt)

    def _still_ours(self, item: RunItem, attempt: int) -> None:
        if self._items.get(item.run.run_id) is not item:
            raise HandedOver(f"run {item.run.run_id} left this replica before its attempt {attempt} started")

    async def attempt_started(
        self, operation_id: str, run_id: str, attempt: int, node_id: str, reattach: Mapping[str, Any]
    ) -> None:
        item = self._items.get(run_id)
        if item is None or not self._exactly_once:
            return
        out = self._dispatched(item, attempt, {**reattach, "node_id": node_id})
        # The process runs already and its attempt is recorded: this record only helps a later owner reap what a
        # kill -9 left (PR_SET_PDEATHSIG kills the run itself). Queued in order, it commits in the next
        # transaction, at the latest with the result, without holding the run's slot for a commit. Not queued
        # (the partition is handed over, or gone): the waiting path sorts out which.
        # In place of the attempt's first record if that has not left yet (it says less): one record less a run.
        replacing = self._starting.pop(run_id, None)
        if self._queue is not None and self._queue(item.source, out, replacing=replacing) is not None:
            return
        await self._durably(run_id, item.source, out)

    def _dispatched(self, item: RunItem, attempt: int, info: Mapping[str, Any]) -> Outgoing:
        changes: dict[str, Any] = {"attempt": attempt}
        if info:
            changes["dispatch"] = {**info, "host": socket.gethostname()}
        record = item.record.with_state("dispatched", **changes)
        return Outgoing(self._topic, item.run.run_id.encode(), record.to_bytes(), partition=item.source.partition)

    async def _durably(self, run_id: str, part: Partition, out: Outgoing) -> bool:
        """Publish `out` and wait for its commit; False (and the run let go) when the partition is not ours."""
        try:
            await self._publish(part, out)
        except Fenced:
            self._lost(run_id)
            return False
        return True

    def _lost(self, run_id: str) -> None:
        log.warning("dispatch_not_recorded_partition_lost", run_id=run_id)
        self._on_lost(run_id)

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None:
        self._starting.pop(result.run_id, None)  # an attempt that never started (its start failed)
