"""The broker seam: what the service needs of a message broker, broker-neutral.

`broker.KafkaBroker` fills it in with aiokafka's clients for `serve`, `memory.MemoryBroker` keeps topics in the
process for the fast tests. Record and partition types are structural, so this module imports no broker client,
and the service (bridge/service/) imports this module, never aiokafka.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


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


class MessageConsumer(Protocol):
    """The group consumer of the suggestions and control topics: what the consume loop and rebalances use."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: list[str], listener: Any) -> None:
        """Join the group; `listener` (a `ConsumerRebalanceListener`) hears `on_partitions_revoked` and
        `on_partitions_assigned`, each awaited."""

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

    def publish(self, record: Any, *, replacing: Any = None) -> asyncio.Future[None]:
        """Queue a record (a `bridge.kafka.publisher.Outgoing`) for the next transaction; the future is done when
        that transaction is committed."""

    def substitute(self, old: Any, new: Any) -> asyncio.Future[None] | None:
        """`new` in the place of `old` if `old` is still queued (the future of their transaction), else None."""

    def committed_within(self, seconds: float) -> bool:
        """Whether a transaction of it committed in the last `seconds`."""

    def complete(self) -> asyncio.Future[None]:
        """Commit newly committable offsets in the next transaction, with nothing to publish."""

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued, then stop; raises `PublishIncomplete` when that could not be done in time."""


class LedgerReader(Protocol):
    """Reads one ledger partition, from where `index` stopped to its end, into `index` (a `LedgerIndex`)."""

    async def __call__(self, partition: int, index: Any) -> None: ...
