"""The real broker of `serve`: `base.Broker` through aiokafka's clients, built from the settings.

`memory.MemoryBroker` is the other one, topics in the process, so the service's logic can be driven in
milliseconds. The service only ever sees the `Broker` shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from bridge.config.settings import BridgeSettings
from bridge.errors import ConfigError
from bridge.kafka.base import (
    BrokerWatcher,
    MessageConsumer,
    PartitionSink,
    RebalanceListener,
    TransactionalPublisher,
)
from bridge.kafka.connection import client_kwargs, ensure_topics, with_broker_retry
from bridge.kafka.errors import group_protocol_refused
from bridge.kafka.lookups import Lookups
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.kafka.publisher import PartitionPublisher
from bridge.kafka.reader import read_to_end

log = structlog.get_logger(__name__)

PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_MS = 5000


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's listener type (its `subscribe` takes no other), handing each call to the bridge's listener."""

    def __init__(self, listener: RebalanceListener, generation: Callable[[], int | None]) -> None:
        self._listener = listener
        self._generation = generation

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._listener.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._listener.on_partitions_assigned(assigned, self._generation())


class _GroupConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's consumer, subscribing with any `RebalanceListener`."""

    def __init__(self, group_id: str, **kwargs: Any) -> None:
        super().__init__(group_id=group_id, **kwargs)
        self._group = group_id

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        super().subscribe(topics=topics, listener=_Listener(listener, self._generation))

    def _generation(self) -> int | None:
        """The generation of the group this member joined last (aiokafka's coordinator sets it before it calls the
        listener; -1 once the member was dropped)."""
        generation = getattr(getattr(self, "_coordinator", None), "generation", None)
        return generation if isinstance(generation, int) and generation >= 0 else None

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        try:
            return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:
            refused = group_protocol_refused(exc, self._group)
            if refused is None:
                raise
            raise refused from exc


class KafkaBroker:
    """The real broker, through aiokafka."""

    def __init__(self, settings: BridgeSettings, *, connect_timeout_s: float = 30.0, exactly_once: bool = True) -> None:
        self._settings = settings
        self._connect_timeout_s = connect_timeout_s
        self._exactly_once = exactly_once  # False: benchmarks only (see `BridgeService`)

    async def prepare(self) -> None:
        """Create the topics that are missing (the ledger compacted), wait for their leaders, and check that the
        control topic is co-partitioned with the suggestions topic."""
        s = self._settings
        await ensure_topics(
            s.kafka,
            s.topics,
            partitions=s.kafka.topic_partitions,
            give_up_after_s=self._connect_timeout_s,
            compacted=[s.topics.ledger],
        )
        async with Lookups(s.kafka) as lookups:
            counts = {t.topic: len(t.partitions) for t in await lookups.topics(s.topics.suggestions, s.topics.control)}
        if counts.get(s.topics.suggestions) != counts.get(s.topics.control):
            # A stop is keyed by its study, like the study's suggestions: only with as many partitions does it land
            # on the partition number of the runs it stops, which the range assignor gives to the same replica.
            raise ConfigError(
                f"topic {s.topics.control} has {counts.get(s.topics.control)} partition(s) and {s.topics.suggestions}"
                f" {counts.get(s.topics.suggestions)}: they need as many, or stops miss the replica that runs"
                f" their run (add partitions to the one with fewer: kafka-topics.sh --alter --partitions N)"
            )

    async def connect(self) -> MessageConsumer:
        """A read_committed consumer of the group, committing only through the publishers' transactions."""
        s = self._settings
        consumer = _GroupConsumer(
            **client_kwargs(s.kafka),
            group_id=s.kafka.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(s.max_message_bytes, 1024 * 1024),
            # Control partition N goes to the owner of suggestions partition N (the topics have as many partitions,
            # `prepare`), so a stop lands where its run is. One strategy only: given several, aiokafka 0.14 sends
            # one JoinGroup per strategy, each new one changing the member's protocols, and every change is one
            # more rebalance of the whole group; two replicas starting together could rebalance each other for
            # minutes (aio-libs/aiokafka#1168).
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await with_broker_retry(
            "connect its consumer",
            consumer.start,
            give_up_after_s=self._connect_timeout_s,
            servers=s.kafka.bootstrap_servers,
        )
        consumer_port: MessageConsumer = consumer
        return consumer_port

    def publisher(
        self,
        source: Partition,
        tracker: OffsetTracker,
        *,
        on_commit: Callable[[int, float], None],
        on_fenced: Callable[[Partition], None],
        owns: Callable[[Partition], bool],
        on_trouble: Callable[[Partition, str | None], None],
    ) -> TransactionalPublisher:
        """A `PartitionPublisher`: one transactional producer per input partition."""
        return PartitionPublisher(
            self._settings,
            source,
            tracker,
            on_commit=on_commit,
            on_fenced=on_fenced,
            owns=owns,
            on_trouble=on_trouble,
            exactly_once=self._exactly_once,
        )

    async def catch_up(self, partition: int, sink: PartitionSink) -> None:
        """`reader.read_to_end` of the ledger topic's partition."""
        await read_to_end(self._settings, self._settings.topics.ledger, partition, sink)

    async def watch(self, watcher: BrokerWatcher, stopping: asyncio.Event) -> None:
        """Ask the broker every few seconds whether it answers (an admin client's metadata request, bounded by its
        own request timeout), and tell `watcher`, until `stopping` is set. Never cancelled mid-request: a
        cancellation that lands while aiokafka opens a connection leaves that connection open for good."""
        admin = AIOKafkaAdminClient(**client_kwargs(self._settings.kafka), request_timeout_ms=PROBE_TIMEOUT_MS)
        started = False
        try:
            while not stopping.is_set():
                try:
                    if not started:
                        await admin.start()
                        started = True
                    await admin.list_topics()
                    await watcher.refresh(broker_ok=True)
                except Exception as exc:
                    log.debug("broker_probe_failed", error=str(exc))
                    await watcher.refresh(broker_ok=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), PROBE_EVERY_S)  # the probe's period
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
