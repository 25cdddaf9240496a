"""From accepted runs to mapping operations and their results: batching, the shared scheduler, and the one
final result of each run, published in one transaction with its `finished` ledger record.

Runs of one partition, study, template (and inline operation) that arrive within `batching.linger_ms` become
one operation (up to `batching.max_configs` runs). The operation runs on `OperationRunner`, the scheduler
`bridge run` uses too; its progress and results come back through a listener and leave through the publisher
of the partition the runs came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from bridge.config.settings import BridgeSettings
from bridge.contract.identity import operation_id_of_runs
from bridge.contract.messages import EarlyStop, LedgerRecord, OperationCounts, OperationCreated, OperationFinished
from bridge.contract.results import NO_OPERATION, ProgressEvent, RunError, RunResult, RunStatus, StopReason
from bridge.engine.plan import OperationPlan
from bridge.engine.ports import LedgerEntry
from bridge.engine.runtime import Runtime
from bridge.engine.scheduler import OperationOutcome, OperationRunner
from bridge.kafka.base import Outgoing
from bridge.kafka.offsets import Partition
from bridge.service.batching import Batcher
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ledger.topic_ledger import TopicLedger
from bridge.service.ownership import Ownership
from bridge.service.publishing import Publishers
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem, fit_result
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _BatchKey:
    source: Partition
    study: str
    template: str
    operation: int  # id() of the template's operation: inline operations never share a batch


def _now() -> datetime:
    return datetime.now(UTC)


class _Listener:
    """Hears one operation's runs and publishes their progress and results."""

    def __init__(self, operations: Operations, items: dict[str, RunItem]) -> None:
        self._operations = operations
        self._items = items

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        return None

    async def run_progress(self, event: ProgressEvent) -> None:
        self._operations.progress(self._items[event.run_id], event)

    async def run_finished(self, result: RunResult) -> None:
        self._operations.finish_run(self._items[result.run_id], result)


class Operations:
    """Batches runs into operations, runs them, and publishes what they report."""

    def __init__(
        self,
        settings: BridgeSettings,
        runtime: Runtime,
        *,
        registry: RunRegistry,
        ownership: Ownership,
        publishers: Publishers,
        index: LedgerIndex,
        ledger: TopicLedger,
        telemetry: Telemetry,
    ) -> None:
        self._settings = settings
        self._topics = settings.topics
        self.runtime = runtime
        self._registry = registry
        self._ownership = ownership
        self._publishers = publishers
        self._index = index
        self._ledger = ledger
        self._telemetry = telemetry
        self._tasks: set[asyncio.Task[None]] = set()
        self._batcher: Batcher[_BatchKey, RunItem] = Batcher(
            settings.batching.linger_ms / 1000, settings.batching.max_configs, self._start
        )
        # Hears each final result as it leaves, with the future of its transaction (None: not queued): `Control`.
        self.on_result: Callable[[str, asyncio.Future[None] | None], None] = lambda run_id, committed: None

    def add(self, part: Partition, study: str, template: str, items: list[RunItem]) -> None:
        """Runs to batch into an operation (of the same partition, study, template and operation)."""
        for item in items:
            if item.record.attempt and item.run.run_id not in self._ledger.prior_attempts:
                # Its first attempt counts as made by a dead previous owner (`lease.py`): this one is the next.
                self._ledger.prior_attempts[item.run.run_id] = LedgerEntry(item.run.run_id, attempt=item.record.attempt)
            if self._ledger.early is not None and item.offset is None:
                self._ledger.early.received(item)  # reconciled from the ledger (fresh runs: `Records._register`)
        self._batcher.add(_BatchKey(part, study, template, id(items[0].operation)), items)

    def stop_batched(self, run_id: str, reason: str) -> bool:
        """Stop a run still being batched: it never starts, and its `stopped` result goes out now."""
        taken = self._batcher.remove(lambda item: item.run.run_id == run_id)
        if not taken:
            return False
        item = taken[0]
        run = item.run
        result = RunResult(
            study=item.study,
            template=item.template,
            operation_id=NO_OPERATION,
            run_id=run.run_id,
            suggestion_id=run.suggestion_id,
            iteration=run.iteration,
            index=run.index,
            params=dict(run.given),
            status=RunStatus.STOPPED,
            attempt=0,
            finished_at=_now(),
            error=RunError(type=StopReason.STOPPED, message=reason),
            metadata=dict(run.metadata),
            warnings=list(run.warnings),
        )
        self.finish_run(item, result)
        return True

    def discard(self, gone: set[Partition]) -> list[RunItem]:
        """Forget the batched, not yet started runs of partitions that left."""
        return self._batcher.discard(lambda key: key.source not in gone)

    async def drain(self, grace_s: float) -> None:
        """Start what is batched and let every operation finish, up to `grace_s`; past it, interrupt them."""
        self._batcher.flush_all()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
        if pending:
            # Past the grace: these runs stay `dispatched` in the ledger; the next owner runs them again.
            log.warning("drain_grace_expired", operations=len(pending))
            self._ownership.drop_all()
            for runner in self._registry.runners():
                runner.stop("bridge shutting down", kind=StopReason.INTERRUPTED)
            await asyncio.wait(pending, timeout=self.runtime.stop_grace_s + 5)

    # ---- one operation -------------------------------------------------------------------------------

    def _start(self, key: _BatchKey, items: list[RunItem]) -> None:
        operation_id = operation_id_of_runs([i.run.run_id for i in items])
        runs = [dataclasses.replace(i.run, index=n) for n, i in enumerate(items)]
        plan = OperationPlan(
            operation_id=operation_id,
            operation=items[0].operation,
            runs=runs,
            cwd=self._settings.base_dir,
            study=key.study,
            template=key.template,
        )
        runner = OperationRunner(plan, self.runtime, _Listener(self, {i.run.run_id: i for i in items}))
        self._registry.bind(runner, items, key.study)
        self._telemetry.operation_created(len(items))
        created = OperationCreated(
            study=key.study,
            template=key.template,
            operation_id=operation_id,
            at=_now(),
            operation=_operation_document(items),
        )
        self._publishers.publish(
            key.source, Outgoing(self._topics.operations, key.study.encode(), created.to_json().encode())
        )
        log.info(
            "operation_created", study=key.study, template=key.template, operation_id=operation_id, runs=len(items)
        )
        task = asyncio.create_task(self._run(runner, key, items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, runner: OperationRunner, key: _BatchKey, items: list[RunItem]) -> None:
        try:
            outcome: OperationOutcome = await runner.run()
        except Exception:
            log.exception("operation_crashed", operation_id=runner.plan.operation_id)
            raise
        finally:
            self._registry.unbind(runner, items, key.study)
            for item in items:
                self._ledger.prior_attempts.pop(item.run.run_id, None)
        counts = outcome.counts()
        finished = OperationFinished(
            study=key.study,
            template=key.template,
            operation_id=outcome.operation_id,
            at=_now(),
            counts=OperationCounts(**{k: v for k, v in counts.items() if k in OperationCounts.model_fields}),
            early_stopping=EarlyStop.model_validate(vars(outcome.early_stop)) if outcome.early_stop else None,
        )
        self._publishers.publish(
            key.source, Outgoing(self._topics.operations, key.study.encode(), finished.to_json().encode())
        )

    # ---- what runs report ----------------------------------------------------------------------------

    def progress(self, item: RunItem, event: ProgressEvent) -> None:
        """An intermediate metric: published as it comes (no ledger record)."""
        value = event.model_dump_json(by_alias=True).encode()
        out = Outgoing(self._topics.results, item.study.encode(), value, sheddable=True)
        self._publishers.publish(item.source, out)

    def finish_run(self, item: RunItem, result: RunResult) -> None:
        """A run's one final result: published with its `finished` ledger record, in one transaction."""
        if self._registry.get(result.run_id) is not item:
            return  # handed over to another replica meanwhile: its new owner publishes the result
        if (
            result.status in (RunStatus.STOPPED, RunStatus.SKIPPED)
            and result.error is not None
            and result.error.type == StopReason.INTERRUPTED
        ):
            self._registry.pop(result.run_id)
            return  # stopped by a shutdown past its grace: `dispatched` stays, the next owner runs it again
        if self._ownership.in_handover(item.source) or (
            self._ownership.owns(item.source) and not self._ownership.reconciled(item.source)
        ):
            # Between a revoke and the assignment that follows: published if the partition comes back. Assigned
            # again and being reconciled: published once it is, after its ledger is read. Published now, its
            # `finished` record could commit after that read, which would find the run unfinished and run it again.
            self._ownership.park(item, result)
            return
        self._registry.pop(result.run_id)
        if not self._ownership.owns(item.source):
            return  # the partition moved: the ledger still says dispatched, its new owner runs it again
        self._telemetry.run_finished(result.status.value, cached=result.cached, duration_s=result.duration_s)
        result = fit_result(result, self._settings.limits.max_record_bytes)
        finished = LedgerRecord.finished_from(item.record, result).to_bytes()
        part = item.source
        self._index.note(
            part.partition, result.run_id, "finished", fingerprint=item.record.fingerprint, record=finished
        )
        # Both queued without an await between them: they leave in the same transaction.
        committed = self._publishers.publish(
            part, Outgoing(self._topics.results, item.study.encode(), result.to_json().encode())
        )
        self._publishers.publish(
            part, Outgoing(self._topics.ledger, result.run_id.encode(), finished, partition=part.partition)
        )
        self.on_result(result.run_id, committed)


def _operation_document(items: list[RunItem]) -> dict[str, Any]:
    body = items[0].operation.model_dump(mode="json", by_alias=True, exclude_none=True)
    matrix = dict(body.get("matrix") or {"kind": "mapping"})
    matrix["values"] = [i.run.given for i in items]
    body["matrix"] = matrix
    return body
