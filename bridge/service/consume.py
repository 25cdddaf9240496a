"""The consume loop: records in while there is room, paused while full, and health that tells the truth.

A record may carry up to `max_suggestions` runs, so records are handled one at a time while there is room and
the rest of a fetched batch waits (`held`), consumption paused meanwhile. Every assigned partition is paused
while the replica is full, including one assigned by a later rebalance, so memory is bounded by runs, not by
what the topics hold. Liveness is consumption progress: records taken, nothing left to take, or a deliberate
pause; a consumer that returns nothing while its partitions have a backlog is stalled (aiokafka#1154), and
`/healthz` says so. The broker's own end offsets (the probe's) keep a hung fetcher from hiding that backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from bridge.kafka.base import ConsumedRecord, MessageConsumer, TopicPartitionLike
from bridge.kafka.offsets import Partition
from bridge.service.health import Health
from bridge.service.registry import RunRegistry
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)

PROBE_EVERY_S = 5.0
LOOP_PERIOD_S = 0.2  # how long one poll, or one wait for room, lasts at most


class ConsumeLoop:
    """Feeds records to `handle` as room allows, and reports lag, pause, liveness and readiness."""

    def __init__(
        self,
        consumer: MessageConsumer,
        registry: RunRegistry,
        *,
        handle: Callable[[TopicPartitionLike, ConsumedRecord], Awaitable[None]],
        before_poll: Callable[[], Awaitable[None]],
        unservable: Callable[[], dict[Partition, str]],
        health: Health,
        telemetry: Telemetry,
        handled: Callable[[Partition, int], None] = lambda part, offset: None,
    ) -> None:
        self._consumer = consumer
        self._on_handled = handled
        self._registry = registry
        self._handle = handle
        self._before_poll = before_poll
        self._unservable = unservable
        self._health = health
        self._telemetry = telemetry
        self._held: deque[tuple[TopicPartitionLike, ConsumedRecord]] = deque()
        self._consumed: dict[TopicPartitionLike, int] = {}  # next offset to handle, per partition (what we took)
        self._ends: dict[TopicPartitionLike, int] = {}  # end offsets asked of the broker by the probe
        self._handled: dict[Partition, int] = {}  # next offset to handle, once what is before it was handled
        self._paused = False
        self._announced = False  # `bridge_ready` is logged once, the first time the replica is ready
        self._lookups: asyncio.Task[None] | None = None  # the broker's offsets asked after a probe (`refresh`)
        self._closed = False
        self.broker_ok = True

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set."""
        held = self._held
        while not stopping.is_set():
            await self._before_poll()
            while held and self._registry.room > 0 and not stopping.is_set():
                tp, record = held.popleft()
                self._consumed[tp] = record.offset + 1
                await self._handle(tp, record)
                part = Partition(tp.topic, tp.partition)
                self._handled[part] = record.offset + 1
                self._on_handled(part, record.offset)
            self._apply_backpressure(waiting=bool(held))
            took = False
            if not held and self._registry.room > 0:
                timeout_ms = int(LOOP_PERIOD_S * 1000)
                batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=min(self._registry.room, 500))
                held.extend((tp, r) for tp, records in batches.items() for r in records)
                took = bool(held)
            else:
                await self._registry.wait_for_room(LOOP_PERIOD_S)
            lag = self._report_lag()
            if took or self._paused or lag == 0:
                self._health.beat()
            self._report_readiness()

    # ---- partitions coming and going -----------------------------------------------------------------

    async def assigned(self, tp: TopicPartitionLike) -> None:
        """Where consumption of a newly assigned partition starts: its committed offset, else its beginning. Not
        `position()`: the fetcher moves that as it prefetches, which would hide a backlog nobody handles."""
        with contextlib.suppress(Exception):
            self._consumed[tp] = await asyncio.wait_for(self._start_offset(tp), PROBE_EVERY_S)
            # Below its committed offset, a partition's records were handled, by whichever owner.
            self._handled[Partition(tp.topic, tp.partition)] = self._consumed[tp]

    def handled_up_to(self, part: Partition) -> int:
        """Every record of `part` below this offset was handled since it was assigned (0: none yet)."""
        return self._handled.get(part, 0)

    def revoked(self, parts: set[Partition]) -> None:
        """Forget what was fetched and not handled: the next owner (maybe this replica) reads it again."""
        for tp in list(self._consumed):
            if Partition(tp.topic, tp.partition) in parts:
                self._consumed.pop(tp, None)
                self._ends.pop(tp, None)
        for part in parts:
            self._handled.pop(part, None)
        kept = [(tp, r) for tp, r in self._held if Partition(tp.topic, tp.partition) not in parts]
        self._held.clear()
        self._held.extend(kept)

    async def _start_offset(self, tp: TopicPartitionLike) -> int:
        committed = await self._consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await self._consumer.beginning_offsets([tp]))[tp])

    # ---- backpressure, lag, health -------------------------------------------------------------------

    def _apply_backpressure(self, *, waiting: bool) -> None:
        over = self._registry.room <= 0 or waiting
        consumer = self._consumer
        if over:
            consumer.pause(*consumer.assignment())
            if not self._paused:
                log.info("consumption_paused", in_flight=len(self._registry))
        elif self._paused:
            consumer.resume(*consumer.assignment())
            log.info("consumption_resumed", in_flight=len(self._registry))
        self._paused = over
        self._telemetry.set_consumer_paused(over)
        self._telemetry.set_runs_in_flight(len(self._registry))

    def _report_lag(self) -> int | None:
        """The total backlog of the assigned partitions, or None while a position or end is unknown."""
        total: int | None = 0
        consumer = self._consumer
        for tp in consumer.assignment():
            ends = (consumer.last_stable_offset(tp), consumer.highwater(tp), self._ends.get(tp))
            known = [e for e in ends if e is not None]
            position = self._consumed.get(tp)
            if not known or position is None:
                total = None
                continue
            lag = max(0, max(known) - position)
            self._telemetry.set_consumer_lag(tp.topic, tp.partition, lag)
            if total is not None:
                total += lag
        return total

    def _report_readiness(self) -> None:
        unservable = self._unservable()
        if not self.broker_ok:
            self._health.set_ready(False, "broker unreachable")
        elif unservable:
            parts = ", ".join(f"{p.topic}:{p.partition} ({why})" for p, why in sorted(unservable.items()))
            self._health.set_ready(False, f"cannot publish for {parts}")
        else:
            assignment = self._consumer.assignment()
            self._health.set_ready(bool(assignment), "no partition assigned")
            # Once the rebalance listener has taken every partition (`assigned`): its `partitions_assigned` first.
            if assignment and not self._announced and all(tp in self._consumed for tp in assignment):
                self._announced = True
                log.info("bridge_ready", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assignment))

    async def refresh(self, broker_ok: bool) -> None:
        """What a broker probe learnt: whether it answers; if so, ask the broker itself (beside the probe, which
        goes on meanwhile) where the assigned partitions end (a hung fetcher's cached ends would hide a backlog)
        and where those whose start offset was not known at assignment (a broker hiccup) start."""
        if not broker_ok:
            if self.broker_ok:
                log.warning("broker_unreachable")
            self.broker_ok = False
            return
        self.broker_ok = True
        # Not awaited by the probe: the consumer's lookups wait up to its request timeout (40 s) for a broker cut
        # off just after the probe's answer, and the probes that would say so must not wait for them.
        if not self._closed and (self._lookups is None or self._lookups.done()):
            self._lookups = asyncio.create_task(self._look_up_offsets(), name="offset-lookups")

    async def close(self) -> None:
        """No more lookups of offsets (the consumer is about to stop): the one under way is cancelled."""
        self._closed = True
        if self._lookups is not None and not self._lookups.done():
            self._lookups.cancel()
            await asyncio.gather(self._lookups, return_exceptions=True)

    async def _look_up_offsets(self) -> None:
        try:
            assignment = list(self._consumer.assignment())
            if assignment:
                self._ends = dict(await self._consumer.end_offsets(assignment))
            for tp in set(assignment) - self._consumed.keys():
                await self.assigned(tp)
        except Exception as exc:  # the broker did not answer after all: what the next probe will say too
            log.debug("offset_lookups_failed", error=str(exc))
            self.broker_ok = False
