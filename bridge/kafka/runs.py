"""The Kafka side of a run's life: what the service keeps per run, and the scheduler's ledger port backed by the
ledger topic (a run's `dispatched` record is committed before its process starts)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.intake import AcceptedRun
from bridge.kafka.publisher import Fenced, Outgoing
from bridge.messages import LedgerRecord
from bridge.models import RunError, RunResult, RunStatus
from bridge.offsets import Partition
from bridge.polyaxon import V1Operation
from bridge.ports import LedgerEntry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunItem:
    """One run this replica owns: what it runs, where it came from, and its ledger record."""

    run: AcceptedRun
    operation: V1Operation
    source: Partition
    record: LedgerRecord
    offset: int | None = None  # the suggestions record it completes; None for a run reconciled from the ledger

    @property
    def study(self) -> str:
        return self.record.study

    @property
    def template(self) -> str:
        return self.record.template


def received_record(
    run: AcceptedRun, study: str, template: str, inline: Mapping[str, Any] | None, fingerprint: str
) -> LedgerRecord:
    """The `received` ledger record of an accepted suggestion: everything needed to run it again."""
    return LedgerRecord(
        run_id=run.run_id,
        state="received",
        study=study,
        template=template,
        suggestion_id=run.suggestion_id,
        iteration=run.iteration,
        params=run.params,
        given=run.given,
        metadata=dict(run.metadata),
        operation=dict(inline) if inline is not None else None,
        fingerprint=fingerprint,
    )


def run_from_record(record: LedgerRecord) -> AcceptedRun:
    """The run a ledger record stands for."""
    return AcceptedRun(
        run_id=record.run_id,
        suggestion_id=record.suggestion_id,
        params=dict(record.params),
        given=dict(record.given),
        iteration=record.iteration,
        metadata=dict(record.metadata),
    )


Publish = Callable[[Partition, Outgoing], "Any"]


class KafkaRunLedger:
    """The scheduler's `RunLedger` for `serve`: `dispatched` is a ledger record committed before the process
    starts, and again with its process group once it has started; `finished` goes out with the result (see
    `BridgeService.finish_run`), so here it does nothing."""

    def __init__(
        self, items: Mapping[str, RunItem], ledger_topic: str, publish: Publish, on_lost: Callable[[str], None]
    ) -> None:
        self._items = items
        self._topic = ledger_topic
        self._publish = publish
        self._on_lost = on_lost
        self.prior_attempts: dict[str, int] = {}

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]:
        # Runs reconciled from the ledger start at their last dispatched attempt + 1.
        return {run_id: LedgerEntry(run_id=run_id, attempt=n) for run_id, n in self.prior_attempts.items()}

    async def dispatched(self, operation_id: str, run_id: str, attempt: int, info: Mapping[str, Any]) -> None:
        item = self._items.get(run_id)
        if item is None:
            return
        # First before the process starts (the attempt counts even if the bridge dies then), then with what the
        # executor tells of it (its process group), so a later owner can reap what a kill -9 of this bridge left.
        changes: dict[str, Any] = {"attempt": attempt}
        if info:
            changes["dispatch"] = {**info, "host": socket.gethostname()}
        record = item.record.with_state("dispatched", **changes)
        try:
            await self._publish(
                item.source, Outgoing(self._topic, run_id.encode(), record.to_bytes(), partition=item.source.partition)
            )
        except Fenced:
            log.warning("dispatch_not_recorded_partition_lost", run_id=run_id)
            self._on_lost(run_id)

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None:
        return None


def fit_result(result: RunResult, max_bytes: int) -> RunResult:
    """The result, or, when it would not fit in a record the broker takes (its ledger record carries it too),
    the same result failed with `result_too_large` and without its outputs: an answer, never a stalled partition."""
    size = len(result.to_json().encode())
    if size <= max_bytes // 2:
        return result
    log.error("result_too_large", run_id=result.run_id, bytes=size, limit=max_bytes // 2)
    error = RunError(
        type="result_too_large",
        message=f"the result is {size} bytes, more than the {max_bytes // 2} the bridge publishes; outputs dropped",
    )
    return result.model_copy(update={"status": RunStatus.FAILED, "outputs": {}, "error": error})
