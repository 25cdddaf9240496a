"""`bridge serve`: one replica of the bridge, composed of parts with one job each.

The walk of one suggestion, each part visited once:
record (`consume.ConsumeLoop`) -> `records.Records` (validate with `intake`, sort with `admission` against the
ledger index, register in `registry.RunRegistry` with a `received` ledger record, or an early-start grant in its
place: `early_start.py`) -> `operations.Operations` (batch into a mapping operation, run it on the scheduler
`bridge run` shares, whose `executor` starts the runs and whose `run_ledger` records `dispatched`: committed
first, or only queued for a granted run) -> the result and its `finished` record through
`publishing.Publishers`, in one transaction with the consumed offset.
Around it: `rebalance.Rebalance` (partitions come and go; `reconcile.Reconciler` reads the ledger of each new
one), `control.Control` (stops from outside), `dead_letters.DeadLetters` (what cannot be taken).
SIGTERM: stop consuming, let runs finish up to `shutdown_grace_s`, publish, commit, exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from bridge.config.settings import BridgeSettings
from bridge.engine.cache import FileCache
from bridge.engine.runtime import Runtime
from bridge.executors.base import Executor
from bridge.kafka.base import Broker, MessageConsumer
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.consume import ConsumeLoop
from bridge.service.control import Control
from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.intake import Templates
from bridge.service.ledger.early_start import EarlyStarts
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ledger.lease import Claims
from bridge.service.ledger.topic_ledger import TopicLedger
from bridge.service.operations import Operations
from bridge.service.ownership import Ownership
from bridge.service.publishing import Publishers
from bridge.service.rebalance import Rebalance
from bridge.service.reconcile import Reconciler
from bridge.service.records import Records
from bridge.service.refusals import DeadLetters
from bridge.service.registry import RunRegistry
from bridge.service.retention import CacheRetention, keep_pruning
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)
T = TypeVar("T")

PRUNE_EVERY_S = 60.0


class BridgeService:
    """One replica of the bridge: run until `stop()`, then drain."""

    def __init__(
        self,
        settings: BridgeSettings,
        *,
        executor: Executor,
        broker: Broker,
        telemetry: Telemetry | None = None,
        exactly_once: bool = True,
    ) -> None:
        """`exactly_once=False` is for benchmarks/serve_throughput.py alone: the same path without ledger records,
        transactions or committed offsets, to measure what the guarantees cost. It is no setting on purpose: no
        configuration file or environment variable can reach it."""
        self.settings = settings
        self._broker = broker  # the topics, consumer, publishers and ledger reader (`bridge.kafka.base.Broker`)
        self.templates = Templates(settings)
        self.telemetry = telemetry or Telemetry(templates=self.templates.names())
        self.health = Health(stall_after_s=settings.http.stall_after_s)
        self.http_port: int | None = None
        self._stopping = asyncio.Event()
        self._fatal: list[str] = []  # why this replica stopped by itself (`_fail`)
        self._rebalance: Rebalance | None = None
        self.consumer: MessageConsumer | None = None  # once `run()` connected it

        self.registry = RunRegistry(settings.max_in_flight)
        self._ownership = Ownership()
        self._tracker = OffsetTracker()
        # What the ledger says of every run ever seen, on disk: replays, conflicts and reconciliation read it.
        self._index = LedgerIndex(settings.workdir / "ledger", settings.topics.ledger)
        self._publishers = Publishers(
            self._broker.publisher,
            self._tracker,
            self._ownership,
            self.telemetry,
            on_fenced=lambda p: self._rebalancer().fenced(p),
        )
        self._claims = Claims(settings.topics.ledger, self._publishers.publish)
        self._dead_letters = DeadLetters(settings, self._publishers, self.telemetry)
        self._ledger = TopicLedger(
            self.registry,
            settings.topics.ledger,
            self._publishers.publish_durably,
            lambda run_id: self._rebalancer().lost_run(run_id),
            queue=self._publishers.publish,
            early=EarlyStarts(
                settings.topics.ledger,
                self._publishers.publish,
                self._publishers.substitute,
                leased=self._publishers.leased,
                claims=self._claims,
                alive=lambda item: self.registry.get(item.run.run_id) is item,
            ),
            exactly_once=exactly_once,
        )
        runtime = Runtime(
            executor=executor,
            ledger=self._ledger,
            cache=FileCache(settings.workdir / "cache"),
            stop_grace_s=min(10.0, settings.shutdown_grace_s),
        )
        self._operations = Operations(
            settings,
            runtime,
            registry=self.registry,
            ownership=self._ownership,
            publishers=self._publishers,
            index=self._index,
            ledger=self._ledger,
            telemetry=self.telemetry,
        )
        self._reconciler = Reconciler(
            settings,
            self.templates,
            index=self._index,
            registry=self.registry,
            ownership=self._ownership,
            publishers=self._publishers,
            dead_letters=self._dead_letters,
            ledger=self._ledger,
            read_ledger=self._broker.catch_up,
            batch=self._operations.add,
            off_loop=self._off_loop,
            claims=self._claims,
        )
        control = Control(
            settings.control,
            settings.message_limits(),
            results_topic=settings.topics.results,
            registry=self.registry,
            index=self._index,
            templates=self.templates.names,
            stop_batched=self._operations.stop_batched,
            tracker=self._tracker,
            publishers=self._publishers,
            dead_letters=self._dead_letters,
        )
        self._operations.on_result = control.result_published
        self._control = control
        self._records = Records(
            settings,
            self.templates,
            index=self._index,
            registry=self.registry,
            ownership=self._ownership,
            publishers=self._publishers,
            tracker=self._tracker,
            dead_letters=self._dead_letters,
            control=control,
            telemetry=self.telemetry,
            batch=self._operations.add,
            off_loop=self._off_loop,
            early=self._ledger.early,
        )

    @property
    def in_flight(self) -> int:
        """Runs accepted and not yet finished on this replica."""
        return len(self.registry)

    @property
    def publish_failures(self) -> list[str]:
        """What this replica could not publish or serve (known once `run()` returned); `serve` exits non-zero if
        any."""
        return self._fatal + self._publishers.failures

    def _fail(self, why: str) -> None:
        """This replica cannot go on serving (`why`): it stops, and `serve` exits non-zero."""
        self._fatal.append(why)
        self.stop()

    def stop(self) -> None:
        """Stop taking work; `run()` then drains and returns."""
        self._stopping.set()

    def _rebalancer(self) -> Rebalance:
        assert self._rebalance is not None, "publishing starts after the consumer subscribed"
        return self._rebalance

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` where it cannot freeze the loop: in a worker thread when inline operations are allowed (it
        may fetch a urlRef or render an untrusted template, each under its deadline), else right here."""
        if self.settings.allow_inline_operations:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def run(self) -> None:
        """Serve until `stop()`; raises `Retryable` when the broker cannot be reached at start."""
        s = self.settings
        http = HttpServer(s.http.host, s.http.port, self.health, self.telemetry)
        await http.start()
        self.http_port = http.port
        background: list[asyncio.Task[None]] = []
        stop_watching = asyncio.Event()  # the broker probe stops when set: it is never cancelled mid-request
        watch: asyncio.Task[None] | None = None
        try:
            await self._broker.prepare()
            consumer = await self._broker.connect()
            self.consumer = consumer
            loop = ConsumeLoop(
                consumer,
                self.registry,
                handle=self._records.handle,
                before_poll=self._reconciler.take_backlog,
                unservable=lambda: self._publishers.unservable,
                health=self.health,
                telemetry=self.telemetry,
                handled=self._claims.handled,
            )
            self._rebalance = Rebalance(
                s.topics.suggestions,
                loop=loop,
                ownership=self._ownership,
                publishers=self._publishers,
                tracker=self._tracker,
                registry=self.registry,
                operations=self._operations,
                reconciler=self._reconciler,
                telemetry=self.telemetry,
                on_revoked=self._control.forget,
                on_fatal=self._fail,
                stopping=self._stopping.is_set,
            )
            consumer.subscribe([s.topics.suggestions, s.topics.control], listener=self._rebalance)
            watch = asyncio.create_task(self._broker.watch(loop, stop_watching))
            background.append(asyncio.create_task(self._prune()))
            log.info("bridge_serving", topics=[s.topics.suggestions, s.topics.control], group=s.kafka.group_id)
            try:
                await loop.run(self._stopping)
                log.info("bridge_draining", in_flight=self.in_flight, grace_s=s.shutdown_grace_s)
                await self._operations.drain(s.shutdown_grace_s)
                # Drained: what this replica started is queued; its partitions go cleanly (`lease.py`).
                self._rebalancer().release({Partition(tp.topic, tp.partition) for tp in consumer.assignment()})
            finally:
                await self._publishers.close_all()
                await loop.close()
                await consumer.stop()
        finally:
            stop_watching.set()
            if watch is not None:
                await asyncio.wait([watch], timeout=10)
            for task in background:
                task.cancel()
            await http.stop()
            await self._operations.runtime.executor.close()
            self._index.close()

    async def _prune(self) -> None:
        """Idle run folders and cached results go, so a long-lived bridge does not fill its disk; runs in flight
        keep theirs."""
        s = self.settings
        await keep_pruning(
            s.workdir,
            every_s=PRUNE_EVERY_S,
            keep_s=s.keep_runs_s,
            max_runs=s.max_run_folders,
            active=self.registry,
            cache=CacheRetention(
                s.workdir / "cache",
                keep_s=max([s.keep_runs_s, *self.templates.cache_ttls()]),
                max_entries=s.max_cache_entries,
            ),
        )
