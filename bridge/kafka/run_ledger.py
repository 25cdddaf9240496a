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
    """The scheduler's `RunLedger` for `serve`: a `dispatched` ledger record is committed as an attempt starts,
    and again with where it runs and how to find it again once it has started (queued, not waited for); `finished`
    goes out with the result (see `Operations.finish_run`), so here it does nothing."""

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
        self.prior_attempts: dict[str, LedgerEntry] = {}

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]:
        # Runs reconciled from the ledger: re-attached to their last attempt, or started at its number + 1.
        return dict(self.prior_attempts)

    async def attempt_starting(self, operation_id: str, run_id: str, attempt: int) -> None:
        await self._dispatched(run_id, attempt, {})

    async def attempt_started(
        self, operation_id: str, run_id: str, attempt: int, node_id: str, reattach: Mapping[str, Any]
    ) -> None:
        await self._dispatched(run_id, attempt, {**reattach, "node_id": node_id})

    async def _dispatched(self, run_id: str, attempt: int, info: Mapping[str, Any]) -> None:
        item = self._items.get(run_id)
        if item is None or not self._exactly_once:
            return
        # First before the executor is asked (the attempt counts even if the bridge dies then), then with what the
        # executor tells of it, so a later owner can re-attach to it, or stop what a kill -9 of this bridge left.
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
