"""An in-memory broker behind the same ports as Kafka, so the service's logic runs in one process in milliseconds.

It keeps what the bridge relies on and nothing else:
- topics of partitions of records (offset, key, value, headers), a record's partition chosen by its key;
- one consumer group of one member: `subscribe` assigns every partition of its topics (the rebalance listener is
  awaited, as aiokafka does), `rebalance()` revokes and assigns them again, consumption starts at the committed
  offset;
- transactions that publish their records and commit their consumed offsets atomically, all or none, and a
  producer started with the same transactional id fences the one before (`ProducerFenced` at its next commit).

What goes through it is the real service: the consume loop, intake, the registry, the scheduler, and the
publisher's own transaction logic (`PartitionPublisher`, here with an in-memory producer). The guarantees across
crashes, restarts and real rebalances stay proven on the real broker (tests/service, tests/faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import ProducerFenced

# aiokafka's own record type: what the service's parts read is what Kafka would hand them
from aiokafka.structs import ConsumerRecord as Record

from bridge.config.settings import BridgeSettings
from bridge.kafka.base import BrokerWatcher, MessageConsumer, PartitionSink, RebalanceListener, TransactionalPublisher
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.kafka.publisher import PartitionPublisher


class MemoryBroker:
    """Topics, the group's committed offsets and the transactional ids' epochs, in memory; a `Broker`."""

    def __init__(self, settings: BridgeSettings) -> None:
        self._settings = settings
        self._partitions = settings.kafka.topic_partitions
        self._topics: dict[str, list[list[Record]]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._epochs: dict[str, int] = {}
        self._appended = asyncio.Event()  # replaced at each append: whoever waits for records wakes up
        self.consumers: list[MemoryConsumer] = []

    # ---- the log -------------------------------------------------------------------------------------

    def _log(self, topic: str) -> list[list[Record]]:
        return self._topics.setdefault(topic, [[] for _ in range(self._partitions)])

    def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (topics are made on first use, as with auto-creation)."""
        return len(self._log(topic))

    def _append(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, headers: Any) -> None:
        log = self._log(topic)
        if partition is None:
            # Records of one key stay in order in one partition, as with Kafka's own partitioner.
            partition = zlib.crc32(key) % len(log) if key is not None else 0
        records = log[partition]
        records.append(
            Record(
                topic=topic,
                partition=partition,
                offset=len(records),
                timestamp=int(time.time() * 1000),
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key or b""),
                serialized_value_size=len(value or b""),
                headers=tuple(headers or ()),
            )
        )

    def _wake(self) -> None:
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Publish one record outside any transaction (what an optimizer or a topic writer does)."""
        self._append(topic, key, value, partition, headers)
        self._wake()

    def records(self, topic: str, partition: int | None = None) -> list[Record]:
        """What a read_committed consumer sees of `topic` (or of one of its partitions), in offset order."""
        log = self._log(topic)
        parts = range(len(log)) if partition is None else [partition]
        return [r for p in parts for r in log[p]]

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of a partition (the next record to read), None when none was."""
        return self._committed.get(TopicPartition(topic, partition))

    async def wait_for_records(self, timeout_s: float) -> None:
        """Return when a record is appended anywhere, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._appended.wait(), timeout_s)

    # ---- transactions --------------------------------------------------------------------------------

    def fence(self, transactional_id: str) -> int:
        """A producer of `transactional_id` starts: the one before it is fenced. Returns the new epoch."""
        epoch = self._epochs.get(transactional_id, 0) + 1
        self._epochs[transactional_id] = epoch
        return epoch

    def commit(
        self,
        transactional_id: str,
        epoch: int,
        records: Sequence[tuple[str, bytes | None, bytes | None, int | None]],
        offsets: Mapping[TopicPartition, int],
    ) -> None:
        """Publish `records` (topic, key, value, partition) and commit `offsets`, all at once; a fenced producer's
        transaction changes nothing."""
        if self._epochs.get(transactional_id) != epoch:
            raise ProducerFenced()
        for topic, key, value, partition in records:
            self._append(topic, key, value, partition, ())
        self._committed.update(offsets)
        self._wake()

    # ---- the `Broker` ports --------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Make the bridge's topics."""
        for topic in self._settings.topics.model_dump().values():
            self._log(topic)

    async def connect(self) -> MessageConsumer:
        """A consumer of the group (its one member)."""
        consumer = MemoryConsumer(self)
        self.consumers.append(consumer)
        return consumer

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
        """The real `PartitionPublisher`, its producer in memory."""
        return _MemoryPartitionPublisher(
            self,
            self._settings,
            source,
            tracker,
            on_commit=on_commit,
            on_fenced=on_fenced,
            owns=owns,
            on_trouble=on_trouble,
        )

    async def catch_up(self, partition: int, sink: PartitionSink) -> None:
        """Read the ledger partition from where `sink` stopped to its end into `sink`."""
        records = self._log(self._settings.topics.ledger)[partition]
        start = sink.next_offset(partition)
        if start > len(records):  # another broker's records: start over
            sink.forget(partition)
            start = 0
        sink.take(partition, records[start:], len(records))

    async def watch(self, watcher: BrokerWatcher, stopping: asyncio.Event) -> None:
        """This broker is always there."""
        await watcher.refresh(broker_ok=True)


class MemoryConsumer:
    """The group's one member: every partition of the subscribed topics is its own."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None
        self._joined = False
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._generation = 0  # one more at each assignment, as a group's generation

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Leave the group."""
        self._assigned.clear()

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        """Join; the assignment (and its listener call) happens at the next `getmany`, as with aiokafka."""
        self._topics = list(topics)
        self._listener = listener
        self._joined = False

    async def _assign(self) -> None:
        self._joined = True
        tps = [TopicPartition(t, p) for t in self._topics for p in range(self._broker.partitions(t))]
        self._assigned = set(tps)
        self._positions = {tp: self._broker.committed_offset(tp.topic, tp.partition) or 0 for tp in tps}
        self._generation += 1
        if self._listener is not None:
            await self._listener.on_partitions_assigned(tps, self._generation)

    async def rebalance(self, *, meanwhile: Callable[[], Awaitable[None]] | None = None, missed: int = 0) -> None:
        """What an eager rebalance does: every partition revoked, then assigned again, consumption going on from
        the committed offsets (what was fetched and not committed is read again). `missed`: generations the group
        went through without this member (its session expired) before it joined again, while `meanwhile` ran (what
        another member did with the partitions then)."""
        revoked = sorted(self._assigned)
        self._assigned = set()
        if self._listener is not None:
            await self._listener.on_partitions_revoked(revoked)
        if meanwhile is not None:
            await meanwhile()
        self._generation += missed
        await self._assign()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        """Records after the positions of the assigned, unpaused partitions; waits up to `timeout_ms` for some."""
        if not self._joined:
            await self._assign()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            out = self._take(max_records)
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            await self._broker.wait_for_records(left)

    def _take(self, max_records: int | None) -> dict[TopicPartition, list[Record]]:
        budget = max_records if max_records is not None else 500
        out: dict[TopicPartition, list[Record]] = {}
        for tp in sorted(self._assigned - self._paused):
            if budget <= 0:
                break
            position = self._positions.get(tp, 0)
            taken = self._broker.records(tp.topic, tp.partition)[position : position + budget]
            if taken:
                out[tp] = taken
                self._positions[tp] = position + len(taken)
                budget -= len(taken)
        return out

    def pause(self, *partitions: TopicPartition) -> None:
        """Fetch nothing more from these until resumed."""
        self._paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch from these again."""
        self._paused -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return set(self._paused)

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned to this member."""
        return set(self._assigned)

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset."""
        return self._broker.committed_offset(partition.topic, partition.partition)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Nothing is ever deleted: every partition begins at 0."""
        return dict.fromkeys(partitions, 0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """One past each partition's last record."""
        return {tp: len(self._broker.records(tp.topic, tp.partition)) for tp in partitions}

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        """Transactions are atomic here: the end is always stable."""
        return len(self._broker.records(partition.topic, partition.partition))

    def highwater(self, partition: TopicPartition) -> int | None:
        """One past the partition's last record."""
        return self.last_stable_offset(partition)


class _MemoryProducer:
    """The subset of `AIOKafkaProducer` that `PartitionPublisher` uses, against a `MemoryBroker`."""

    def __init__(self, broker: MemoryBroker, transactional_id: str) -> None:
        self._broker = broker
        self._id = transactional_id
        self._epoch = 0
        self._records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._offsets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self._epoch = self._broker.fence(self._id)

    async def stop(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self._records, self._offsets = [], {}
        yield  # an exception inside aborts: nothing was appended
        self._broker.commit(self._id, self._epoch, self._records, self._offsets)

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        self._records.append((topic, key, value, partition))
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent.set_result(None)  # delivered with the transaction's commit
        return sent

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, Any], group_id: str) -> None:
        self._offsets.update({tp: int(meta.offset) for tp, meta in offsets.items()})


class _MemoryPartitionPublisher(PartitionPublisher):
    """`PartitionPublisher`'s transaction logic unchanged, its producer the broker's in-memory one."""

    def __init__(self, broker: MemoryBroker, *args: Any, **kwargs: Any) -> None:
        self._memory = broker  # before the parent's __init__, which makes the producer
        super().__init__(*args, **kwargs)

    def _new_producer(self) -> Any:
        return _MemoryProducer(self._memory, self.transactional_id)

    async def _committed_offset(self) -> int | None:
        return self._memory.committed_offset(self._source.topic, self._source.partition)

    async def _ledger_tail(self, count: int) -> list[tuple[bytes | None, bytes | None]]:
        records = self._memory.records(self._settings.topics.ledger, self._source.partition)
        return [(r.key, r.value) for r in records[-count:]]
