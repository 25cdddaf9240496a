"""`bridge serve`: suggestions in from Kafka, mapping operations run by the shared scheduler, results out.

The loop: consume (read_committed, manual commits) -> intake (validate, or dead-letter) -> a `received` ledger
record per run, committed with the consumed offset -> batcher (per partition, study and template) ->
OperationRunner (the same scheduler as `bridge run`; `dispatched` is committed before each process starts) ->
the result and the `finished` record in one transaction. On assignment a replica fences the partition's previous
owner and reconciles from the ledger: finished runs are never run or published again, the others run again.
Past `max_in_flight` runs, consumption pauses. SIGTERM: stop consuming, let runs finish up to
`shutdown_grace_s`, publish, commit, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import ProducerFenced

from bridge.batching import Batcher
from bridge.cache import FileCache
from bridge.config import BridgeSettings
from bridge.executors.local import LocalExecutor
from bridge.http import Health, HttpServer
from bridge.intake import AcceptedRun, Templates, accept, accept_ledger_record
from bridge.kafka.admission import admit
from bridge.kafka.connection import client_kwargs, ensure_topics, with_broker_retry
from bridge.kafka.ledger import catch_up, parse_record
from bridge.kafka.ledger_index import IndexedRun, LedgerIndex
from bridge.kafka.publisher import Fenced, Outgoing, PartitionPublisher
from bridge.kafka.runs import KafkaRunLedger, RunItem, fit_result, received_record
from bridge.messages import (
    DeadLetter,
    DeadLetterError,
    EarlyStop,
    LedgerRecord,
    MessageError,
    OperationCounts,
    OperationCreated,
    OperationFinished,
    parse_control,
)
from bridge.models import ProgressEvent, RunResult, RunStatus
from bridge.offsets import OffsetTracker, Partition
from bridge.plan import OperationPlan, PlannedRun
from bridge.ports import Executor
from bridge.retention import CacheRetention, keep_pruning
from bridge.scheduler import OperationOutcome, OperationRunner, Runtime
from bridge.telemetry import Telemetry

log = structlog.get_logger(__name__)
T = TypeVar("T")

RECONCILE_PAGE = 256  # unfinished runs taken from the ledger index at a time, as room allows
BROKER_PROBE_S = 5.0
PRUNE_EVERY_S = 60.0


@dataclass(frozen=True)
class _BatchKey:
    source: Partition
    study: str
    template: str
    operation: int  # id() of the template's operation: inline operations never share a batch


def _now() -> datetime:
    return datetime.now(UTC)


def _study_mismatch(what: str, target: str) -> DeadLetterError:
    return DeadLetterError(
        type="control_refused", field="study", message=f"{what} {target} is not of the study this message names"
    )


class _Listener:
    """Publishes one operation's progress and results through the publisher of their source partition."""

    def __init__(self, service: BridgeService, items: dict[str, RunItem]) -> None:
        self._service = service
        self._items = items

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        return None

    async def run_progress(self, event: ProgressEvent) -> None:
        item = self._items[event.run_id]
        value = event.model_dump_json(by_alias=True).encode()
        self._service.publish(item.source, Outgoing(self._service.settings.topics.results, item.study.encode(), value))

    async def run_finished(self, result: RunResult) -> None:
        self._service.finish_run(self._items[result.run_id], result)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    def __init__(self, service: BridgeService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.partitions_assigned(assigned)


class BridgeService:
    """One replica of the bridge: run until `stop()`, then drain."""

    def __init__(
        self,
        settings: BridgeSettings,
        *,
        executor: Executor | None = None,
        telemetry: Telemetry | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.templates = Templates(settings)
        self.telemetry = telemetry or Telemetry(templates=self.templates.names())
        self.health = Health(stall_after_s=settings.http.stall_after_s)
        self._connect_timeout_s = connect_timeout_s
        self._items: dict[str, RunItem] = {}  # runs this replica owns and has not finished
        self._ledger = KafkaRunLedger(self._items, settings.topics.ledger, self._publish_durably, self._lost_run)
        self._runtime = Runtime(
            executor=executor
            or LocalExecutor(
                max_parallel=settings.executor.max_parallel, env_passthrough=settings.executor.env_passthrough
            ),
            ledger=self._ledger,
            workdir=settings.workdir,
            cache=FileCache(settings.workdir / "cache"),
            stop_grace_s=min(10.0, settings.shutdown_grace_s),
        )
        self._tracker = OffsetTracker()
        self._publishers: dict[Partition, PartitionPublisher] = {}
        self._owned: set[Partition] = set()
        self._handover: set[Partition] = set()  # revoked, not yet known whether they come back
        # Set once a partition's assignment is reconciled: records of it wait for that (the listener runs beside
        # the consume loop, which may already hold the partition's first records).
        self._reconciled: dict[Partition, asyncio.Event] = {}
        self._gaps: dict[Partition, asyncio.Event] = {}  # set when a revoked partition's next assignment is known
        self._parked: dict[Partition, list[tuple[RunItem, RunResult]]] = {}  # results finished within a gap
        self._runners: dict[str, OperationRunner] = {}
        self._operations: set[asyncio.Task[None]] = set()
        self._run_owner: dict[str, OperationRunner] = {}
        self._suggestion_runs: dict[tuple[str, str], str] = {}
        # What the ledger says of every run ever seen, on disk: replays, conflicts and reconciliation read it.
        self._index = LedgerIndex(settings.workdir / "ledger", settings.topics.ledger)
        self._limits = settings.message_limits()
        self._held: deque[tuple[TopicPartition, ConsumerRecord]] = deque()
        self._room_freed = asyncio.Event()  # a run finished or left: the consume loop may take more
        self._backlog: set[Partition] = set()  # partitions with unfinished ledger runs not yet taken up
        self._unservable: dict[Partition, str] = {}  # partitions whose results cannot be published, and why
        self._publish_failures: list[str] = []  # what could not be published: `serve` then exits non-zero
        self._paused = False
        self._broker_ok = True
        self._consumed: dict[TopicPartition, int] = {}  # next offset to handle, per partition (what we took)
        self._ends: dict[TopicPartition, int] = {}  # end offsets asked of the broker by the probe
        self._stopping = asyncio.Event()
        self._batcher: Batcher[_BatchKey, RunItem] = Batcher(
            settings.batching.linger_ms / 1000, settings.batching.max_configs, self._start_operation
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._http: HttpServer | None = None
        self.http_port: int | None = None

    @property
    def in_flight(self) -> int:
        """Runs accepted and not yet finished on this replica."""
        return len(self._items)

    # ---- life ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking work; `run()` then drains and returns."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until `stop()`; raises `Retryable` when the broker cannot be reached at start."""
        s = self.settings
        self._http = HttpServer(s.http.host, s.http.port, self.health, self.telemetry)
        await self._http.start()
        self.http_port = self._http.port
        probe: asyncio.Task[None] | None = None
        pruner: asyncio.Task[None] | None = None
        try:
            await ensure_topics(
                s.kafka,
                s.topics,
                partitions=s.kafka.topic_partitions,
                give_up_after_s=self._connect_timeout_s,
                compacted=[s.topics.ledger],
            )
            consumer = AIOKafkaConsumer(
                **client_kwargs(s.kafka),
                group_id=s.kafka.group_id,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=max(s.max_message_bytes, 1024 * 1024),
            )
            await with_broker_retry(
                "connect its consumer",
                consumer.start,
                give_up_after_s=self._connect_timeout_s,
                servers=s.kafka.bootstrap_servers,
            )
            self._consumer = consumer
            consumer.subscribe([s.topics.suggestions, s.topics.control], listener=_Rebalance(self))
            probe = asyncio.create_task(self._probe_broker())
            # Idle run folders go, so a long-lived bridge does not fill its disk; runs in flight are kept.
            pruner = asyncio.create_task(
                keep_pruning(
                    s.workdir,
                    every_s=PRUNE_EVERY_S,
                    keep_s=s.keep_runs_s,
                    max_runs=s.max_run_folders,
                    active=self._items,
                    cache=CacheRetention(
                        s.workdir / "cache",
                        keep_s=max([s.keep_runs_s, *self.templates.cache_ttls()]),
                        max_entries=s.max_cache_entries,
                    ),
                )
            )
            log.info("bridge_serving", topics=[s.topics.suggestions, s.topics.control], group=s.kafka.group_id)
            try:
                await self._consume(consumer)
                await self._drain()
            finally:
                await self._close_publishers()
                await consumer.stop()
        finally:
            for task in (probe, pruner):
                if task is not None:
                    task.cancel()
            await self._http.stop()
            await self._runtime.executor.close()
            self._index.close()

    @property
    def _room(self) -> int:
        """Runs this replica may still take before it is full."""
        return self.settings.max_in_flight - self.in_flight

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # A record may carry up to `max_suggestions` runs, so records are handled one at a time while there is
        # room; the rest of a fetched batch waits in `_held` (consumption paused meanwhile).
        held = self._held
        while not self._stopping.is_set():
            await self._take_backlog()
            while held and self._room > 0 and not self._stopping.is_set():
                tp, record = held.popleft()
                await self._handle(tp, record)
            self._apply_backpressure(consumer, waiting=bool(held))
            took = False
            if not held and self._room > 0:
                batches = await consumer.getmany(timeout_ms=200, max_records=min(self._room, 500))
                held.extend((tp, r) for tp, records in batches.items() for r in records)
                took = bool(held)
            else:
                self._room_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room_freed.wait(), timeout=0.2)
            lag = self._report_lag(consumer)
            # Progress is records taken, or nothing left to take, or a deliberate pause; a consumer that
            # returns nothing while the partitions have a backlog is stalled (aiokafka#1154) and /healthz says so.
            if took or self._paused or lag == 0:
                self.health.beat()
            self._report_readiness(bool(consumer.assignment()))

    def _report_readiness(self, assigned: bool) -> None:
        if not self._broker_ok:
            self.health.set_ready(False, "broker unreachable")
        elif self._unservable:
            parts = ", ".join(f"{p.topic}:{p.partition} ({why})" for p, why in sorted(self._unservable.items()))
            self.health.set_ready(False, f"cannot publish for {parts}")
        else:
            self.health.set_ready(assigned, "no partition assigned")

    async def _probe_broker(self) -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings.kafka), request_timeout_ms=5000)
        started = False
        while True:
            try:
                if not started:
                    await admin.start()
                    started = True
                await asyncio.wait_for(admin.list_topics(), timeout=BROKER_PROBE_S)
                self._broker_ok = True
                consumer = self._consumer
                if consumer is not None and consumer.assignment():
                    # Ends from the broker itself: a hung fetcher's cached ones would hide the backlog.
                    ends = await asyncio.wait_for(consumer.end_offsets(list(consumer.assignment())), BROKER_PROBE_S)
                    self._ends = dict(ends)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            except Exception as exc:
                if self._broker_ok:
                    log.warning("broker_unreachable", error=str(exc))
                self._broker_ok = False
            await asyncio.sleep(BROKER_PROBE_S)  # a probe's period, not a synchronisation

    def _apply_backpressure(self, consumer: AIOKafkaConsumer, *, waiting: bool) -> None:
        """Pause every assigned partition while full, whichever was assigned since (a fresh assignment after a
        rebalance is paused too), so memory is bounded by runs, not by what the topic holds."""
        over = self._room <= 0 or waiting
        if over:
            consumer.pause(*consumer.assignment())
            if not self._paused:
                log.info("consumption_paused", in_flight=self.in_flight)
        elif self._paused:
            consumer.resume(*consumer.assignment())
            log.info("consumption_resumed", in_flight=self.in_flight)
        self._paused = over
        self.telemetry.set_consumer_paused(over)
        self.telemetry.set_runs_in_flight(self.in_flight)

    def _report_lag(self, consumer: AIOKafkaConsumer) -> int | None:
        """The total backlog of the assigned partitions, or None while a position or end is unknown."""
        total: int | None = 0
        for tp in consumer.assignment():
            ends = (consumer.last_stable_offset(tp), consumer.highwater(tp), self._ends.get(tp))
            known = [e for e in ends if e is not None]
            end = max(known) if known else None
            position = self._consumed.get(tp, self._position(consumer, tp))
            if end is None or position is None:
                total = None
                continue
            lag = max(0, end - position)
            self.telemetry.set_consumer_lag(tp.topic, tp.partition, lag)
            if total is not None:
                total += lag
        return total

    @staticmethod
    def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        # `position()` is a coroutine in aiokafka; the fetcher's cached one is enough here.
        try:
            state = consumer._subscription.subscription.assignment.state_value(tp)
        except AttributeError:
            return None
        return int(state.position) if state is not None and state.has_valid_position else None

    async def _drain(self) -> None:
        log.info("bridge_draining", in_flight=self.in_flight, grace_s=self.settings.shutdown_grace_s)
        self._batcher.flush_all()
        if self._operations:
            _, pending = await asyncio.wait(self._operations, timeout=self.settings.shutdown_grace_s)
            if pending:
                # Past the grace: these runs stay `dispatched` in the ledger; the next owner runs them again.
                log.warning("drain_grace_expired", operations=len(pending))
                self._owned.clear()
                for runner in self._runners.values():
                    runner.stop("bridge shutting down", interrupted=True, kind="interrupted")
                await asyncio.wait(pending, timeout=self._runtime.stop_grace_s + 5)

    async def _close_publishers(self) -> None:
        """Publish what is queued and stop; what could not be published is kept in `_publish_failures`."""
        publishers, self._publishers = self._publishers, {}
        for part, publisher in publishers.items():
            try:
                await publisher.close()
            except Exception as exc:
                self._publish_failures.append(f"{part.topic}:{part.partition}: {type(exc).__name__}: {exc}")
            if publisher.failed is not None and not isinstance(publisher.failed, ProducerFenced):
                self._publish_failures.append(f"{part.topic}:{part.partition}: {publisher.failed}")
            if publisher.dropped:
                self._publish_failures.append(f"{part.topic}:{part.partition}: {publisher.dropped} records too large")
        for part, why in self._unservable.items():
            self._publish_failures.append(f"{part.topic}:{part.partition}: {why}")

    @property
    def publish_failures(self) -> list[str]:
        """What this replica could not publish (known once `run()` returned); `serve` exits non-zero if any."""
        return list(self._publish_failures)

    # ---- partitions ----------------------------------------------------------------------------------

    async def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """A rebalance gave these partitions to this replica: fence their previous owner, then reconcile."""
        consumer = self._consumer
        for tp in assigned:
            self._owned.add(Partition(tp.topic, tp.partition))
            if consumer is not None:
                with contextlib.suppress(Exception):
                    self._consumed[tp] = await asyncio.wait_for(self._start_offset(consumer, tp), BROKER_PROBE_S)
        log.info("partitions_assigned", partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])
        back, gone = self._handover & self._owned, self._handover - self._owned
        self._handover = set()
        self._hand_over(gone)
        for tp in assigned:
            part = Partition(tp.topic, tp.partition)
            if tp.topic == self.settings.topics.suggestions:
                await self._reconcile(part, parked=self._parked.pop(part, []) if part in back else [])
            self._reconciled.setdefault(part, asyncio.Event()).set()
        for part in back | gone:
            gap = self._gaps.pop(part, None)
            if gap is not None:
                gap.set()

    @staticmethod
    async def _start_offset(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        # Where consumption of a newly assigned partition starts: its committed offset, else its beginning. Not
        # `position()`: the fetcher moves that as it prefetches, which would hide a backlog nobody handles.
        committed = await consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await consumer.beginning_offsets([tp]))[tp])

    async def _reconcile(self, part: Partition, parked: list[tuple[RunItem, RunResult]]) -> None:
        publisher = await self._publisher(part)  # its start fenced the previous owner, aborting its transaction
        for item, result in parked:  # finished while the partition was between two assignments
            self.finish_run(item, result)
        await publisher.flush()  # what this replica queued itself is in the ledger before it is read
        # What this replica noted is tentative; the topic, read to its end, says what was committed.
        self._index.clear_local(part.partition)
        await catch_up(self.settings, part.partition, self._index)
        ours = [run_id for run_id, item in self._items.items() if item.source == part]
        self._index.note_many(part.partition, ours, "active")  # still running here: the partition came back
        log.info("ledger_reconciled", partition=part.partition, **self._index.counts(part.partition))
        self._backlog.add(part)

    async def _take_backlog(self) -> None:
        """Run again what the ledger has unfinished, a page at a time as room allows (memory is bounded by runs,
        however many the ledger holds). Each record is re-validated like a suggestion before it runs."""
        for part in sorted(self._backlog):
            if self._room <= 0:
                return
            if part not in self._owned:
                self._backlog.discard(part)
                continue
            reconciled = self._reconciled.get(part)
            if reconciled is None or not reconciled.is_set():
                continue  # being reconciled again (the listener runs beside this loop): its index is not settled
            rows = self._index.unfinished(part.partition, min(self._room, RECONCILE_PAGE))
            if not rows:
                self._backlog.discard(part)
                continue
            self._index.note_many(part.partition, [row.run_id for row in rows], "active")
            rerun: dict[_BatchKey, list[RunItem]] = {}
            for row in rows:
                if row.run_id in self._items:
                    continue  # running here already
                item = await self._rerun_item(part, row)
                if item is None:
                    continue
                self._items[item.run.run_id] = item
                self._ledger.prior_attempts[item.run.run_id] = item.record.attempt
                key = _BatchKey(part, item.study, item.template, id(item.operation))
                rerun.setdefault(key, []).append(item)
            for key, items in rerun.items():
                log.warning("runs_resumed_from_ledger", partition=part.partition, study=key.study, runs=len(items))
                self._batcher.add(key, items)

    async def _rerun_item(self, part: Partition, row: IndexedRun) -> RunItem | None:
        """The run an unfinished ledger record stands for, validated like a suggestion; None (and a dead letter
        and a tombstone, so it is never looked at again) when it is not one the bridge would have accepted."""
        try:
            record = parse_record(row.record, self._limits)
            accepted = await self._off_loop(accept_ledger_record, record, self.templates, self.settings)
        except MessageError as exc:
            accepted = DeadLetterError.from_exception(exc)
        if isinstance(accepted, DeadLetterError):
            self._reject_ledger_record(part, row, accepted)
            return None
        operation, run = accepted
        if record.state == "dispatched" and record.dispatch:
            # A kill -9 of the bridge that ran it may have left its processes: stop them before it runs again.
            await self._runtime.executor.reap_orphan(run.run_id, record.dispatch)
        return RunItem(run=run, operation=operation, source=part, record=record)

    def _reject_ledger_record(self, part: Partition, row: IndexedRun, error: DeadLetterError) -> None:
        topic = self.settings.topics.ledger
        letter = DeadLetter.of_record(
            topic=topic,
            partition=part.partition,
            offset=row.offset or 0,
            key=row.run_id.encode(),
            value=row.record,
            timestamp_ms=None,
            error=DeadLetterError(
                type="invalid_ledger_record", field=error.field, message=f"{error.type}: {error.message}"
            ),
            max_excerpt_bytes=self.settings.limits.max_excerpt_bytes,
        )
        log.error("ledger_record_refused", partition=part.partition, run_id=row.run_id[:200], type=error.type)
        self.telemetry.dead_lettered("invalid_ledger_record")
        self.publish(part, Outgoing(self.settings.topics.dead_letters, row.run_id.encode(), letter.to_json().encode()))
        # A tombstone: compaction removes the record, and no later reconciliation refuses it again.
        self.publish(part, Outgoing(topic, row.run_id.encode(), None, partition=part.partition))
        self._index.note(part.partition, row.run_id, "finished")

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what is done on partitions leaving this replica and stop publishing for them. Their runs go on
        until the assignment that follows: aiokafka revokes every partition at each rebalance, and most of them
        come back; those that do not are stopped then, and their new owner runs them again from the ledger."""
        parts = {Partition(tp.topic, tp.partition) for tp in revoked}
        for tp in revoked:
            self._consumed.pop(tp, None)
            self._ends.pop(tp, None)
        self._owned -= parts
        self._handover |= parts
        self._backlog -= parts
        # Fetched and not handled: their next owner (maybe this replica again) reads them from the committed offset.
        kept = [(tp, r) for tp, r in self._held if Partition(tp.topic, tp.partition) not in parts]
        self._held.clear()
        self._held.extend(kept)
        for part in parts:
            ready = self._reconciled.pop(part, None)
            if ready is not None:
                ready.set()  # wakes a record waiting for it, which then sees the partition is gone
        for part in parts:
            publisher = self._publishers.pop(part, None)
            if publisher is not None:
                await publisher.close()
            self._tracker.revoke(part)
            self.telemetry.forget_partition(part.topic, part.partition)
        if revoked:
            log.info("partitions_revoked", partitions=[f"{tp.topic}:{tp.partition}" for tp in revoked])

    def _hand_over(self, gone: set[Partition]) -> None:
        if not gone:
            return
        for part in gone:
            for item, _ in self._parked.pop(part, []):
                self._items.pop(item.run.run_id, None)
        for item in self._batcher.discard(lambda key: key.source not in gone):
            self._items.pop(item.run.run_id, None)
        for run_id, item in list(self._items.items()):
            if item.source in gone:
                self._lost_run(run_id)
        log.info("partitions_handed_over", partitions=sorted(f"{p.topic}:{p.partition}" for p in gone))

    def _lost_run(self, run_id: str) -> None:
        """This replica may no longer publish for this run: stop it (its new owner runs it again)."""
        item = self._items.pop(run_id, None)
        self._room_freed.set()
        owner = self._run_owner.get(run_id)
        if owner is not None:
            owner.stop_run(run_id, "partition moved to another replica", kind="interrupted")
        if item is not None:
            log.info("run_handed_over", run_id=run_id, partition=item.source.partition)

    def _fenced(self, part: Partition) -> None:
        log.error("partition_fenced", partition=part.partition, topic=part.topic)
        self._owned.discard(part)
        self._handover.discard(part)
        self._publishers.pop(part, None)
        for run_id, item in list(self._items.items()):
            if item.source == part:
                self._lost_run(run_id)

    async def _publisher(self, part: Partition) -> PartitionPublisher:
        publisher = self._publishers.get(part)
        if publisher is None:
            # Registered before it starts: a second caller (the rebalance listener runs beside the consume loop)
            # must share it, never start a second producer that would fence this one.
            publisher = PartitionPublisher(
                self.settings,
                part,
                self._tracker,
                on_commit=lambda n, s: self.telemetry.publish_transaction(s),
                on_fenced=self._fenced,
                owns=lambda p: p in self._owned,
                on_trouble=self._publisher_trouble,
            )
            self._publishers[part] = publisher
            try:
                await publisher.start()
            except BaseException:
                self._publishers.pop(part, None)
                raise
        await publisher.started()
        return publisher

    def _publisher_trouble(self, part: Partition, error: str | None) -> None:
        """A publisher could not commit for `retry_for_s` (error), or can again (None): readiness says so."""
        if error is None:
            if self._unservable.pop(part, None) is not None:
                log.warning("partition_publishing_again", topic=part.topic, partition=part.partition)
        elif part not in self._unservable:
            log.error("partition_cannot_publish", topic=part.topic, partition=part.partition, error=error)
            self._unservable[part] = error[:200]

    def publish(self, part: Partition, record: Outgoing) -> asyncio.Future[None] | None:
        """Queue a record on the publisher of `part` (dropped if this replica no longer owns `part`)."""
        publisher = self._publishers.get(part)
        if publisher is None or part not in self._owned:
            log.info("publish_dropped_not_owner", partition=part.partition, topic=record.topic)
            return None
        return publisher.publish(record)

    async def _publish_durably(self, part: Partition, record: Outgoing) -> None:
        if part in self._handover:
            await self._gaps.setdefault(part, asyncio.Event()).wait()  # does the partition come back?
        future = self.publish(part, record)
        if future is None:
            raise Fenced(f"{part} is not owned here")
        await asyncio.shield(future)

    # ---- records -------------------------------------------------------------------------------------

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        self._consumed[tp] = record.offset + 1
        part = Partition(tp.topic, tp.partition)
        ready = self._reconciled.setdefault(part, asyncio.Event())
        if not ready.is_set():
            await ready.wait()
        if part not in self._owned:
            # Revoked before it was reconciled: not handled, so not committed; its next owner reads it again.
            log.info("record_left_for_next_owner", partition=part.partition, offset=record.offset)
            return
        publisher = await self._publisher(part)
        try:
            if tp.topic == self.settings.topics.control:
                self._control(part, record, publisher)
            else:
                await self._suggestions(part, record, publisher)
        except Exception as exc:
            # The last line of defence: whatever one record does, it ends in a dead letter and the loop goes on.
            log.exception("record_failed", partition=part.partition, offset=record.offset)
            error = DeadLetterError(type="internal_error", message=f"{type(exc).__name__}: {exc}")
            self._tracker.add(part, record.offset, 1)
            self._dead_letter(part, record, error)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` where it cannot freeze the loop: in a worker thread when inline operations are allowed (it
        may fetch a urlRef or render an untrusted template, each under its deadline), else right here."""
        if self.settings.allow_inline_operations:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _suggestions(self, part: Partition, record: ConsumerRecord, publisher: PartitionPublisher) -> None:
        outcome = await self._off_loop(accept, record.value or b"", self.templates, self.settings)
        if isinstance(outcome, DeadLetterError):
            self._tracker.add(part, record.offset, 1)
            self._dead_letter(part, record, outcome)
            return
        admission = admit(outcome, self._items, self._index)
        inline = None
        if outcome.operation is not self.templates.get(outcome.template):
            inline = outcome.operation.model_dump(mode="json", by_alias=True, exclude_none=True)
        # Everything is built and sized before anything is registered: a refusal leaves no trace behind.
        prepared = []
        for run, print_ in admission.fresh:
            ledger_record = received_record(run, outcome.study, outcome.template, inline, print_)
            value = ledger_record.to_bytes()
            if len(value) > self.settings.limits.max_record_bytes:
                self._tracker.add(part, record.offset, 1)
                limit = self.settings.limits.max_record_bytes
                self._dead_letter(
                    part,
                    record,
                    DeadLetterError(
                        type="record_too_large",
                        field=f"suggestions[{outcome.runs.index(run)}]",
                        message=f"its params and metadata make a ledger record of {len(value)} bytes,"
                        f" more than the {limit} the bridge writes",
                    ),
                )
                return
            prepared.append((run, ledger_record, value))
        units = len(prepared) + len(admission.replays) + (1 if admission.conflicts else 0)
        self._tracker.add(part, record.offset, units)
        if admission.waiting:
            log.info("suggestions_already_known", study=outcome.study, count=admission.waiting, offset=record.offset)
            self.telemetry.suggestion_received(outcome.template, "duplicate", admission.waiting)
        for copy in admission.replays:
            self.publish(
                part,
                Outgoing(self.settings.topics.results, outcome.study.encode(), copy.to_json().encode(), record.offset),
            )
        if admission.replays:
            self.telemetry.suggestion_received(outcome.template, "replayed", len(admission.replays))
        if admission.conflicts:
            self._conflict(part, record, admission.conflicts)
        if units == 0:
            publisher.complete()
            return
        if not prepared:
            return
        self.telemetry.suggestion_received(outcome.template, "accepted", len(prepared))
        items = []
        for run, ledger_record, value in prepared:
            item = RunItem(
                run=run, operation=outcome.operation, source=part, record=ledger_record, offset=record.offset
            )
            self._items[run.run_id] = item
            # `received`, with everything needed to run it again, commits with the consumed offset.
            publisher.publish(
                Outgoing(
                    self.settings.topics.ledger,
                    run.run_id.encode(),
                    value,
                    completes=record.offset,
                    partition=part.partition,
                )
            )
            items.append(item)
        self._index.note_many(part.partition, [(i.run.run_id, i.record.fingerprint) for i in items], "active")
        key = _BatchKey(part, outcome.study, outcome.template, id(outcome.operation))
        self._batcher.add(key, items)

    def _conflict(self, part: Partition, record: ConsumerRecord, conflicts: list[tuple[int, AcceptedRun]]) -> None:
        position, run = conflicts[0]
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        error = DeadLetterError(
            type="conflicting_suggestion",
            field=f"suggestions[{position}].id",
            message=f"suggestion `{run.suggestion_id}` (run {run.run_id}) was seen before with other params;"
            f" a new configuration needs a new id{more}",
        )
        self._dead_letter(part, record, error)

    def _dead_letter(self, part: Partition, record: ConsumerRecord, error: DeadLetterError) -> None:
        letter = DeadLetter.of_record(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp_ms=record.timestamp,
            error=error,
            headers=[(str(k), v) for k, v in (record.headers or ())],
            max_excerpt_bytes=self.settings.limits.max_excerpt_bytes,
        )
        log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            type=error.type,
            field=(error.field or "")[:200],
            message=error.message[:300],
        )
        self.telemetry.dead_lettered(error.type)
        self.telemetry.suggestion_received("_unknown", "dead_lettered")
        self.publish(
            part,
            Outgoing(self.settings.topics.dead_letters, record.key, letter.to_json().encode(), completes=record.offset),
        )

    def _control(self, part: Partition, record: ConsumerRecord, publisher: PartitionPublisher) -> None:
        """A stop names its study, which must be the stopped run's or operation's; with `control.token` set, a
        message without it is refused. Refusals are dead letters; a target not running here is logged (another
        replica may own it)."""
        try:
            msg = parse_control(record.value or b"", limits=self._limits)
        except MessageError as exc:
            self._refuse_control(part, record, DeadLetterError.from_exception(exc))
            return
        token = self.settings.control.token
        if token is not None and not hmac.compare_digest(
            (msg.token or "").encode("utf-8", "surrogatepass"), token.get_secret_value().encode()
        ):
            refusal = DeadLetterError(type="control_unauthorized", field="token", message="missing or wrong token")
            self._refuse_control(part, record, refusal)
            return
        reason = msg.reason or f"{msg.action} requested"
        if msg.action == "stop_operation" and msg.operation_id is not None:
            runner = self._runners.get(msg.operation_id)
            if runner is not None and runner.plan.study != msg.study:
                self._refuse_control(part, record, _study_mismatch("operation", msg.operation_id))
                return
            if runner is not None:
                runner.stop(reason)
            log.info("control_stop_operation", operation_id=msg.operation_id, found=runner is not None)
        else:
            run_id = msg.run_id or self._suggestion_runs.get((msg.study, msg.suggestion_id or ""))
            item = self._items.get(run_id or "")
            owner = self._run_owner.get(run_id or "")
            if item is not None and item.study != msg.study:
                self._refuse_control(part, record, _study_mismatch("run", run_id or ""))
                return
            if owner is not None and run_id is not None:
                owner.stop_run(run_id, reason)
            log.info("control_stop_run", run_id=run_id, found=owner is not None)
        self._tracker.add(part, record.offset, 0)
        publisher.complete()

    def _refuse_control(self, part: Partition, record: ConsumerRecord, error: DeadLetterError) -> None:
        self._tracker.add(part, record.offset, 1)
        self._dead_letter(part, record, error)

    # ---- operations ----------------------------------------------------------------------------------

    def _start_operation(self, key: _BatchKey, items: list[RunItem]) -> None:
        ids = sorted(i.run.run_id for i in items)
        operation_id = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]
        runs = [
            PlannedRun(
                index=n,
                run_id=i.run.run_id,
                params=i.run.params,
                given=i.run.given,
                suggestion_id=i.run.suggestion_id,
                iteration=i.run.iteration,
                metadata=i.run.metadata,
            )
            for n, i in enumerate(items)
        ]
        plan = OperationPlan(
            operation_id=operation_id,
            operation=items[0].operation,
            runs=runs,
            cwd=self.settings.base_dir,
            study=key.study,
            template=key.template,
        )
        runner = OperationRunner(plan, self._runtime, _Listener(self, {i.run.run_id: i for i in items}))
        self._runners[operation_id] = runner
        for item in items:
            self._run_owner[item.run.run_id] = runner
            self._suggestion_runs[(key.study, item.run.suggestion_id)] = item.run.run_id
        self.telemetry.operation_created(len(items))
        created = OperationCreated(
            study=key.study,
            template=key.template,
            operation_id=operation_id,
            at=_now(),
            operation=self._operation_document(items),
        )
        self.publish(
            key.source, Outgoing(self.settings.topics.operations, key.study.encode(), created.to_json().encode())
        )
        log.info(
            "operation_created", study=key.study, template=key.template, operation_id=operation_id, runs=len(items)
        )
        task = asyncio.create_task(self._run_operation(runner, key, items))
        self._operations.add(task)
        task.add_done_callback(self._operations.discard)

    @staticmethod
    def _operation_document(items: list[RunItem]) -> dict[str, Any]:
        body = items[0].operation.model_dump(mode="json", by_alias=True, exclude_none=True)
        matrix = dict(body.get("matrix") or {"kind": "mapping"})
        matrix["values"] = [i.run.given for i in items]
        body["matrix"] = matrix
        return body

    async def _run_operation(self, runner: OperationRunner, key: _BatchKey, items: list[RunItem]) -> None:
        try:
            outcome: OperationOutcome = await runner.run()
        except Exception:
            log.exception("operation_crashed", operation_id=runner.plan.operation_id)
            raise
        finally:
            self._runners.pop(runner.plan.operation_id, None)
            for item in items:
                self._run_owner.pop(item.run.run_id, None)
                self._suggestion_runs.pop((key.study, item.run.suggestion_id), None)
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
        self.publish(
            key.source, Outgoing(self.settings.topics.operations, key.study.encode(), finished.to_json().encode())
        )

    def finish_run(self, item: RunItem, result: RunResult) -> None:
        """A run's one final result: published with its `finished` ledger record, in one transaction."""
        if self._items.get(result.run_id) is not item:
            return  # handed over to another replica meanwhile: its new owner publishes the result
        if (
            result.status in (RunStatus.STOPPED, RunStatus.SKIPPED)
            and result.error is not None
            and result.error.type == "interrupted"
        ):
            del self._items[result.run_id]
            self._room_freed.set()
            return  # stopped by a shutdown past its grace: `dispatched` stays, the next owner runs it again
        if item.source in self._handover:
            # Between a revoke and the assignment that follows: published if the partition comes back.
            self._parked.setdefault(item.source, []).append((item, result))
            return
        del self._items[result.run_id]
        self._room_freed.set()
        if item.source not in self._owned:
            return  # the partition moved: the ledger still says dispatched, its new owner runs it again
        self.telemetry.run_finished(result.status.value, cached=result.cached, duration_s=result.duration_s)
        result = fit_result(result, self.settings.limits.max_record_bytes)
        finished = LedgerRecord.finished_from(item.record, result).to_bytes()
        self._index.note(
            item.source.partition, result.run_id, "finished", fingerprint=item.record.fingerprint, record=finished
        )
        # Both queued without an await between them: they leave in the same transaction.
        self.publish(
            item.source, Outgoing(self.settings.topics.results, item.study.encode(), result.to_json().encode())
        )
        self.publish(
            item.source,
            Outgoing(self.settings.topics.ledger, result.run_id.encode(), finished, partition=item.source.partition),
        )
