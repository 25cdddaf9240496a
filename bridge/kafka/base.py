"""The broker seam: what the service needs of a message broker, broker-neutral.

`broker.KafkaBroker` fills it in with aiokafka's clients for `serve`, `memory.MemoryBroker` keeps topics in the
process for the fast tests. Record and partition types are structural, so this module imports no broker client,
and the service (bridge/service/) imports this module, never aiokafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.kafka.offsets import OffsetTracker, Partition


@dataclass(frozen=True)
class Outgoing:
    """One record to publish, the partition it must go to (None: by key), and the unit of work (a consumed
    record's offset) it completes, if any."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    completes: int | None = None
    partition: int | None = None
    sheddable: bool = False  # an intermediate event nobody waits for: left out when too many wait for the broker


class TopicPartitionLike(Protocol):
    """A topic partition as a broker client names it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class ConsumedRecord(Protocol):
    """A record as a consumer hands it over."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch, as the producer or the broker stamped it."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class RebalanceListener(Protocol):
    """Hears the group's partitions leave and come; each call is awaited before consumption goes on."""

    async def on_partitions_revoked(self, revoked: list[TopicPartitionLike]) -> None: ...

    async def on_partitions_assigned(self, assigned: list[TopicPartitionLike], generation: int | None = None) -> None:
        """`generation`: the group's generation this assignment belongs to, when the broker tells it (None: unknown).
        A partition assigned again one generation after its last assignment here was nobody else's in between."""


class MessageConsumer(Protocol):
    """The group consumer of the suggestions and control topics: what the consume loop and rebalances use."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        """Join the group; `listener` hears the partitions leave and come."""

    async def getmany(
        self, *partitions: TopicPartitionLike, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartitionLike, list[ConsumedRecord]]:
        """Records of the assigned, unpaused partitions after their positions, waiting up to `timeout_ms`."""

    def pause(self, *partitions: TopicPartitionLike) -> None: ...

    def resume(self, *partitions: TopicPartitionLike) -> None: ...

    def assignment(self) -> set[TopicPartitionLike]: ...

    async def committed(self, partition: TopicPartitionLike) -> int | None:
        """The group's committed offset of `partition` (the next one to read), None when it has none."""

    async def beginning_offsets(self, partitions: list[TopicPartitionLike]) -> dict[TopicPartitionLike, int]: ...

    async def end_offsets(self, partitions: list[TopicPartitionLike]) -> dict[TopicPartitionLike, int]: ...

    def last_stable_offset(self, partition: TopicPartitionLike) -> int | None: ...

    def highwater(self, partition: TopicPartitionLike) -> int | None: ...


class TransactionalPublisher(Protocol):
    """Publishes what one consumed partition caused, with its committable offsets, in atomic transactions."""

    failed: BaseException | None  # set once it stopped for good (fenced, or refused)
    dropped: int  # records that could never be published

    async def start(self) -> None:
        """Connect, fencing any earlier owner of the same partition."""

    async def started(self) -> None:
        """Wait until `start()` (whoever called it) has fenced the previous owner."""

    def publish(self, record: Outgoing, *, replacing: Outgoing | None = None) -> asyncio.Future[None]:
        """Queue a record for the next transaction; the future is done when that transaction is committed."""

    def substitute(self, old: Outgoing, new: Outgoing) -> asyncio.Future[None] | None:
        """`new` in the place of `old` if `old` is still queued (the future of their transaction), else None."""

    def committed_within(self, seconds: float) -> bool:
        """Whether a transaction of it committed in the last `seconds`."""

    def complete(self) -> asyncio.Future[None]:
        """Commit newly committable offsets in the next transaction, with nothing to publish."""

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued, then stop; raises `PublishIncomplete` when that could not be done in time."""


class NewPublisher(Protocol):
    """Makes the (not yet started) transactional publisher of one input partition."""

    def __call__(
        self,
        source: Partition,
        tracker: OffsetTracker,
        *,
        on_commit: Callable[[int, float], None],
        on_fenced: Callable[[Partition], None],
        owns: Callable[[Partition], bool],
        on_trouble: Callable[[Partition, str | None], None],
    ) -> TransactionalPublisher: ...


class PartitionSink(Protocol):
    """Where the records of a partition read to its end go (the service's ledger index), a page at a time."""

    def next_offset(self, partition: int) -> int:
        """Where reading starts: what the sink already holds ends before it."""

    def forget(self, partition: int) -> None:
        """Drop what the sink holds of `partition` (it was of another topic: the topic was recreated)."""

    def take(self, partition: int, records: Sequence[ConsumedRecord], position: int) -> None:
        """A page of records, and the offset reading goes on from."""


class BrokerWatcher(Protocol):
    """Told by the broker's watch whether the broker answers (the consume loop: readiness and lag)."""

    async def refresh(self, broker_ok: bool) -> None: ...


class Broker(Protocol):
    """The broker parts of one replica: its topics, its group consumer, its per-partition transactional
    publishers, the reader of its ledger, and the watch on the broker's own health."""

    async def prepare(self) -> None:
        """Make sure the bridge's topics exist; raises `Retryable` when the broker cannot be reached."""

    async def connect(self) -> MessageConsumer:
        """A started consumer of the bridge's group (not yet subscribed)."""

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
        """The (not yet started) transactional publisher of one input partition (a `NewPublisher`)."""

    async def catch_up(self, partition: int, sink: PartitionSink) -> None:
        """Read one ledger partition, from where `sink` stopped to its end, into `sink`."""

    async def watch(self, watcher: BrokerWatcher, stopping: asyncio.Event) -> None:
        """Keep `watcher` told whether the broker answers, until `stopping` is set."""
