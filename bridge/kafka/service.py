"""`bridge serve`: suggestions in from Kafka, mapping operations run by the shared scheduler, results out.

The loop: consume (read_committed, manual commits) -> intake (validate, or dead-letter) -> batcher (per
partition, study and template) -> OperationRunner (the same scheduler as `bridge run`) -> the partition's
transactional publisher, which commits each consumed offset in the transaction that makes its last result
durable. Past `max_in_flight` runs, consumption pauses. SIGTERM: stop consuming, let runs finish up to
`shutdown_grace_s`, publish, commit, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from bridge.batching import Batcher
from bridge.cache import FileCache
from bridge.config import BridgeSettings
from bridge.executors.local import LocalExecutor
from bridge.http import Health, HttpServer
from bridge.intake import Accepted, AcceptedRun, Templates, accept
from bridge.kafka.connection import client_kwargs, ensure_topics, with_broker_retry
from bridge.kafka.publisher import Outgoing, PartitionPublisher
from bridge.ledger import MemoryLedger
from bridge.messages import (
    DeadLetter,
    DeadLetterError,
    EarlyStop,
    MessageError,
    OperationCounts,
    OperationCreated,
    OperationFinished,
    parse_control,
)
from bridge.models import ProgressEvent, RunResult
from bridge.offsets import OffsetTracker, Partition
from bridge.plan import OperationPlan, PlannedRun
from bridge.ports import Executor
from bridge.scheduler import OperationOutcome, OperationRunner, Runtime
from bridge.telemetry import Telemetry

log = structlog.get_logger(__name__)

KNOWN_RUNS = 100_000  # run ids remembered to recognise a message sent again; bounded whatever the backlog


@dataclass(frozen=True)
class _Item:
    run: AcceptedRun
    accepted: Accepted
    source: Partition
    offset: int


@dataclass(frozen=True)
class _BatchKey:
    source: Partition
    study: str
    template: str
    operation: int  # id() of the template's operation: inline operations never share a batch


def _now() -> datetime:
    return datetime.now(UTC)


class _Listener:
    """Publishes one operation's progress and results through the publisher of its source partition."""

    def __init__(self, service: BridgeService, study: str, items: dict[str, _Item]) -> None:
        self._service = service
        self._study = study.encode()
        self._items = items

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        return None

    async def run_progress(self, event: ProgressEvent) -> None:
        item = self._items[event.run_id]
        self._service.publish(
            item.source,
            Outgoing(
                self._service.settings.topics.results,
                self._study,
                event.model_dump_json(by_alias=True).encode(),
            ),
        )

    async def run_finished(self, result: RunResult) -> None:
        item = self._items[result.run_id]
        self._service.finish_run(item, result)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    def __init__(self, service: BridgeService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._service.partitions_assigned(assigned)


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
        self.health = Health()
        self._connect_timeout_s = connect_timeout_s
        self._runtime = Runtime(
            executor=executor or LocalExecutor(max_parallel=settings.executor.max_parallel),
            ledger=MemoryLedger(),
            workdir=settings.workdir,
            cache=FileCache(settings.workdir / "cache"),
            stop_grace_s=min(10.0, settings.shutdown_grace_s),
        )
        self._tracker = OffsetTracker()
        self._publishers: dict[Partition, PartitionPublisher] = {}
        self._owned: set[Partition] = set()
        self._runners: dict[str, OperationRunner] = {}
        self._operations: set[asyncio.Task[None]] = set()
        self._run_owner: dict[str, OperationRunner] = {}
        self._suggestion_runs: dict[tuple[str, str], str] = {}
        self._known: OrderedDict[str, bool] = OrderedDict()  # run id -> finished?
        self._in_flight = 0
        self._paused = False
        self._stopping = asyncio.Event()
        self._batcher: Batcher[_BatchKey, _Item] = Batcher(
            settings.batching.linger_ms / 1000, settings.batching.max_configs, self._start_operation
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._http: HttpServer | None = None
        self.http_port: int | None = None

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
        try:
            await ensure_topics(s.kafka, s.topics, partitions=4, give_up_after_s=self._connect_timeout_s)
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
            log.info("bridge_serving", topics=[s.topics.suggestions, s.topics.control], group=s.kafka.group_id)
            try:
                await self._consume(consumer)
                await self._drain()
            finally:
                await self._close_publishers()
                await consumer.stop()
        finally:
            await self._http.stop()
            await self._runtime.executor.close()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            self._apply_backpressure(consumer)
            room = max(1, self.settings.max_in_flight - self._in_flight)
            batches = await consumer.getmany(timeout_ms=200, max_records=min(room, 500))
            self.health.beat()
            self.health.set_ready(bool(consumer.assignment()), "no partition assigned")
            for tp, records in batches.items():
                for record in records:
                    await self._handle(tp, record)
            self._report_lag(consumer)

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        over = self._in_flight >= self.settings.max_in_flight
        if over and not self._paused:
            consumer.pause(*consumer.assignment())
            log.info("consumption_paused", in_flight=self._in_flight)
        elif not over and self._paused:
            consumer.resume(*consumer.assignment())
            log.info("consumption_resumed", in_flight=self._in_flight)
        self._paused = over
        self.telemetry.set_consumer_paused(over)

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer.last_stable_offset(tp) if highwater is None else highwater
            with contextlib.suppress(Exception):  # the position is unknown until the first fetch
                if position is not None:
                    self.telemetry.set_consumer_lag(tp.partition, max(0, position - self._position(consumer, tp)))

    @staticmethod
    def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        # `position()` is a coroutine in aiokafka; the fetcher's cached one is enough for a gauge.
        state = consumer._subscription.subscription.assignment.state_value(tp)
        return int(state.position) if state is not None and state.has_valid_position else 0

    async def _drain(self) -> None:
        log.info("bridge_draining", in_flight=self._in_flight, grace_s=self.settings.shutdown_grace_s)
        self._batcher.flush_all()
        if self._operations:
            _, pending = await asyncio.wait(self._operations, timeout=self.settings.shutdown_grace_s)
            if pending:
                # Past the grace: these runs' records stay uncommitted and are replayed by the next owner.
                log.warning("drain_grace_expired", operations=len(pending))
                for runner in self._runners.values():
                    runner.stop("bridge shutting down", interrupted=True, kind="interrupted")
                self._owned.clear()
                await asyncio.wait(pending, timeout=self._runtime.stop_grace_s + 5)

    async def _close_publishers(self) -> None:
        publishers, self._publishers = self._publishers, {}
        for publisher in publishers.values():
            with contextlib.suppress(Exception):
                await publisher.close()

    # ---- partitions ----------------------------------------------------------------------------------

    def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """A rebalance gave these partitions to this replica."""
        for tp in assigned:
            self._owned.add(Partition(tp.topic, tp.partition))
        log.info("partitions_assigned", partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what is done on partitions leaving this replica; what is not is replayed by their new owner."""
        for tp in revoked:
            part = Partition(tp.topic, tp.partition)
            self._owned.discard(part)
            publisher = self._publishers.pop(part, None)
            if publisher is not None:
                with contextlib.suppress(Exception):
                    await publisher.close()
            self._tracker.revoke(part)
            self.telemetry.forget_partition(tp.partition)
        if revoked:
            log.info("partitions_revoked", partitions=[f"{tp.topic}:{tp.partition}" for tp in revoked])

    async def _publisher(self, part: Partition) -> PartitionPublisher:
        publisher = self._publishers.get(part)
        if publisher is None:
            publisher = PartitionPublisher(
                self.settings,
                part,
                self._tracker,
                on_commit=lambda n, s: self.telemetry.publish_transaction(s),
            )
            await publisher.start()
            self._publishers[part] = publisher
        return publisher

    def publish(self, part: Partition, record: Outgoing) -> None:
        """Queue a record on the publisher of `part` (dropped if this replica no longer owns `part`)."""
        publisher = self._publishers.get(part)
        if publisher is None or part not in self._owned:
            log.info("publish_dropped_not_owner", partition=part.partition, topic=record.topic)
            return
        publisher.publish(record)

    # ---- records -------------------------------------------------------------------------------------

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        part = Partition(tp.topic, tp.partition)
        publisher = await self._publisher(part)
        if tp.topic == self.settings.topics.control:
            self._tracker.add(part, record.offset, 0)
            self._control(record)
            publisher.complete()
            return
        outcome = accept(record.value or b"", self.templates, self.settings)
        if isinstance(outcome, DeadLetterError):
            self._tracker.add(part, record.offset, 1)
            self._dead_letter(part, record, outcome)
            return
        fresh = [r for r in outcome.runs if r.run_id not in self._known]
        duplicates = len(outcome.runs) - len(fresh)
        if duplicates:
            log.info("suggestions_already_known", study=outcome.study, count=duplicates, offset=record.offset)
            self.telemetry.suggestion_received(outcome.template, "duplicate", duplicates)
        self._tracker.add(part, record.offset, len(fresh))
        if not fresh:
            publisher.complete()
            return
        self.telemetry.suggestion_received(outcome.template, "accepted", len(fresh))
        for run in fresh:
            self._remember(run.run_id, finished=False)
        self._in_flight += len(fresh)
        self.telemetry.set_runs_in_flight(self._in_flight)
        key = _BatchKey(part, outcome.study, outcome.template, id(outcome.operation))
        self._batcher.add(key, [_Item(run, outcome, part, record.offset) for run in fresh])

    def _remember(self, run_id: str, *, finished: bool) -> None:
        self._known[run_id] = finished
        self._known.move_to_end(run_id)
        while len(self._known) > KNOWN_RUNS:
            self._known.popitem(last=False)

    def _dead_letter(self, part: Partition, record: ConsumerRecord, error: DeadLetterError) -> None:
        letter = DeadLetter.of_record(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp_ms=record.timestamp,
            error=error,
        )
        log.warning(
            "dead_letter",
            partition=record.partition,
            offset=record.offset,
            type=error.type,
            field=error.field,
            message=error.message[:300],
        )
        self.telemetry.dead_lettered(error.type)
        self.telemetry.suggestion_received("_unknown", "dead_lettered")
        self.publish(
            part,
            Outgoing(
                self.settings.topics.dead_letters,
                record.key,
                letter.to_json().encode(),
                completes=record.offset,
            ),
        )

    def _control(self, record: ConsumerRecord) -> None:
        try:
            msg = parse_control(record.value or b"", max_bytes=self.settings.max_message_bytes)
        except MessageError as exc:
            self._dead_letter(Partition(record.topic, record.partition), record, DeadLetterError.from_exception(exc))
            return
        reason = msg.reason or f"{msg.action} requested"
        if msg.action == "stop_operation" and msg.operation_id is not None:
            runner = self._runners.get(msg.operation_id)
            if runner is not None:
                runner.stop(reason)
            log.info("control_stop_operation", operation_id=msg.operation_id, found=runner is not None)
            return
        run_id = msg.run_id or self._suggestion_runs.get((msg.study, msg.suggestion_id or ""))
        owner = self._run_owner.get(run_id or "")
        if owner is not None and run_id is not None:
            owner.stop_run(run_id, reason)
        log.info("control_stop_run", run_id=run_id, found=owner is not None)

    # ---- operations ----------------------------------------------------------------------------------

    def _start_operation(self, key: _BatchKey, items: list[_Item]) -> None:
        accepted = items[0].accepted
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
            operation=accepted.operation,
            runs=runs,
            cwd=self.settings.base_dir,
            study=key.study,
            template=key.template,
        )
        by_run = {i.run.run_id: i for i in items}
        runner = OperationRunner(plan, self._runtime, _Listener(self, key.study, by_run))
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
            operation=self._operation_document(accepted, items),
        )
        self.publish(
            key.source,
            Outgoing(self.settings.topics.operations, key.study.encode(), created.to_json().encode()),
        )
        log.info(
            "operation_created",
            study=key.study,
            template=key.template,
            operation_id=operation_id,
            runs=len(items),
        )
        task = asyncio.create_task(self._run_operation(runner, key, items))
        self._operations.add(task)
        task.add_done_callback(self._operations.discard)

    @staticmethod
    def _operation_document(accepted: Accepted, items: list[_Item]) -> dict[str, Any]:
        body = accepted.operation.model_dump(mode="json", by_alias=True, exclude_none=True)
        matrix = dict(body.get("matrix") or {"kind": "mapping"})
        matrix["values"] = [i.run.given for i in items]
        body["matrix"] = matrix
        return body

    async def _run_operation(self, runner: OperationRunner, key: _BatchKey, items: list[_Item]) -> None:
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
            key.source,
            Outgoing(self.settings.topics.operations, key.study.encode(), finished.to_json().encode()),
        )

    def finish_run(self, item: _Item, result: RunResult) -> None:
        """A run's one final result: publish it with the offset it completes."""
        if result.status.value in ("stopped", "skipped") and item.source not in self._owned:
            return  # stopped because this replica lost the partition or shut down: the new owner runs it
        self._in_flight -= 1
        self.telemetry.set_runs_in_flight(self._in_flight)
        self.telemetry.run_finished(result.status.value, cached=result.cached, duration_s=result.duration_s)
        self._remember(result.run_id, finished=True)
        self.publish(
            item.source,
            Outgoing(
                self.settings.topics.results,
                (result.study or "").encode(),
                result.to_json().encode(),
                completes=item.offset,
            ),
        )
