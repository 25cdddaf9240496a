"""The scheduler's `RunLedger` port for `serve`, backed by the ledger topic."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from bridge.errors import Fenced
from bridge.kafka.publisher import Outgoing
from bridge.kafka.registry import RunRegistry
from bridge.models import RunResult
from bridge.offsets import Partition
from bridge.ports import LedgerEntry

log = structlog.get_logger(__name__)

Publish = Callable[[Partition, Outgoing], Awaitable[None]]
Queue = Callable[[Partition, Outgoing], "asyncio.Future[None] | None"]


class KafkaRunLedger:
    """The scheduler's `RunLedger` for `serve`: `dispatched` is a ledger record committed before the process
    starts, and again with its process group once it has started (queued, not waited for); `finished` goes out
    with the result (see `Operations.finish_run`), so here it does nothing."""

    def __init__(
        self,
        registry: RunRegistry,
        ledger_topic: str,
        publish: Publish,
        on_lost: Callable[[str], None],
        *,
        queue: Queue | None = None,
        exactly_once: bool = True,
    ) -> None:
        self._items = registry
        self._topic = ledger_topic
        self._publish = publish
        self._queue = queue
        self._exactly_once = exactly_once  # False: benchmarks only (see `BridgeService`)
        self._on_lost = on_lost
        self.prior_attempts: dict[str, int] = {}

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]:
        # Runs reconciled from the ledger start at their last dispatched attempt + 1.
        return {run_id: LedgerEntry(run_id=run_id, attempt=n) for run_id, n in self.prior_attempts.items()}

    async def dispatched(self, operation_id: str, run_id: str, attempt: int, info: Mapping[str, Any]) -> None:
        item = self._items.get(run_id)
        if item is None or not self._exactly_once:
            return
        # First before the process starts (the attempt counts even if the bridge dies then), then with what the
        # executor tells of it (its process group), so a later owner can reap what a kill -9 of this bridge left.
        changes: dict[str, Any] = {"attempt": attempt}
        if info:
            changes["dispatch"] = {**info, "host": socket.gethostname()}
        record = item.record.with_state("dispatched", **changes)
        out = Outgoing(self._topic, run_id.encode(), record.to_bytes(), partition=item.source.partition)
        # With its process group, the process runs already and its attempt is durable: this record only helps a
        # later owner reap what a kill -9 left (PR_SET_PDEATHSIG kills the run itself). Queued in order, it
        # commits in the next transaction, at the latest with the result, without holding the run's slot for a
        # commit. Not queued (the partition is handed over, or gone): the waiting path below sorts out which.
        if info and self._queue is not None and self._queue(item.source, out) is not None:
            return
        try:
            await self._publish(item.source, out)
        except Fenced:
            self._lost(run_id)

    def _lost(self, run_id: str) -> None:
        log.warning("dispatch_not_recorded_partition_lost", run_id=run_id)
        self._on_lost(run_id)

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None:
        return None
