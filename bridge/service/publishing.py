"""Publishing for every input partition this replica owns: one transactional publisher each (made by the broker:
publisher.py's on Kafka, memory.py's in the fast tests), who may publish (only the owner), and what could not be
published (readiness, and `serve`'s exit status)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from bridge.errors import Fenced
from bridge.kafka.base import NewPublisher, Outgoing, TransactionalPublisher
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.ledger.lease import LEASE_S
from bridge.service.ownership import Ownership
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)


class Publishers:
    """The partitions' publishers: started on first use, shared by everyone who publishes for a partition."""

    def __init__(
        self,
        new_publisher: NewPublisher,
        tracker: OffsetTracker,
        ownership: Ownership,
        telemetry: Telemetry,
        on_fenced: Callable[[Partition], None],
    ) -> None:
        self._new_publisher = new_publisher
        self._tracker = tracker
        self._ownership = ownership
        self._telemetry = telemetry
        self._on_fenced = on_fenced
        self._publishers: dict[Partition, TransactionalPublisher] = {}
        self.unservable: dict[Partition, str] = {}  # partitions whose records cannot be committed, and why
        self._failures: list[str] = []
        self._closed = False  # after close_all, no publisher starts: it would be left running

    async def get(self, part: Partition) -> TransactionalPublisher:
        """The publisher of `part`, started (which fences the partition's previous owner) if it was not."""
        if self._closed:
            raise Fenced(f"{part}: this replica is shutting down")
        publisher = self._publishers.get(part)
        if publisher is None:
            # Registered before it starts: a second caller (the rebalance listener runs beside the consume loop)
            # must share it, never start a second producer that would fence this one.
            publisher = self._new_publisher(
                part,
                self._tracker,
                on_commit=lambda n, s: self._telemetry.publish_transaction(s),
                on_fenced=self._fenced,
                owns=self._ownership.owns,
                on_trouble=self._trouble,
            )
            self._publishers[part] = publisher
            try:
                await publisher.start()
            except BaseException:
                self._publishers.pop(part, None)
                raise
        await publisher.started()
        return publisher

    def publish(
        self, part: Partition, record: Outgoing, *, replacing: Outgoing | None = None
    ) -> asyncio.Future[None] | None:
        """Queue a record on the publisher of `part` (dropped if this replica no longer owns `part`), in place of
        `replacing` if that one is still queued."""
        publisher = self._publishers.get(part)
        if publisher is None or not self._ownership.owns(part):
            log.info("publish_dropped_not_owner", partition=part.partition, topic=record.topic)
            return None
        return publisher.publish(record, replacing=replacing)

    def substitute(self, part: Partition, old: Outgoing, new: Outgoing) -> asyncio.Future[None] | None:
        """`new` in the place of `old` on the publisher of `part`, if `old` is still queued there; else None."""
        publisher = self._publishers.get(part)
        if publisher is None or not self._ownership.owns(part):
            return None
        return publisher.substitute(old, new)

    def complete(self, part: Partition) -> None:
        """Commit `part`'s newly committable offsets in its next transaction, if this replica still publishes
        for it."""
        publisher = self._publishers.get(part)
        if publisher is not None and self._ownership.owns(part):
            publisher.complete()

    def leased(self, part: Partition) -> bool:
        """Whether `part` is owned and its producer committed within `LEASE_S`: a record queued now is committed
        by this replica or, should it die first, assumed by the next owner (`lease.py`)."""
        publisher = self._publishers.get(part)
        return publisher is not None and self._ownership.owns(part) and publisher.committed_within(LEASE_S)

    async def publish_durably(self, part: Partition, record: Outgoing) -> None:
        """Publish and wait until committed; raises `Fenced` when this replica may not publish for `part`."""
        await self._ownership.wait_gap(part)  # handed over: does the partition come back?
        future = self.publish(part, record)
        if future is None:
            raise Fenced(f"{part} is not owned here")
        await asyncio.shield(future)

    async def close(self, part: Partition) -> None:
        """Commit what `part` has queued and stop its publisher (the partition leaves this replica). What could not
        be committed is the next owner's to run again from the ledger: logged, not a failure of this replica."""
        publisher = self._publishers.pop(part, None)
        if publisher is None:
            return
        try:
            await publisher.close()
        except Exception as exc:
            log.warning("publisher_closed_with_work_left", topic=part.topic, partition=part.partition, error=str(exc))

    async def close_all(self) -> None:
        """Commit what is queued everywhere and stop; what could not be published goes to `failures`."""
        self._closed = True
        publishers, self._publishers = self._publishers, {}
        for part, publisher in publishers.items():
            await self._close_one(part, publisher)
        self._failures += [f"{p.topic}:{p.partition}: {why}" for p, why in self.unservable.items()]

    @property
    def failures(self) -> list[str]:
        """What this replica could not publish; `serve` exits non-zero if anything."""
        return list(self._failures)

    async def _close_one(self, part: Partition, publisher: TransactionalPublisher) -> None:
        where = f"{part.topic}:{part.partition}"
        try:
            await publisher.close()
        except Exception as exc:
            self._failures.append(f"{where}: {type(exc).__name__}: {exc}")
        if publisher.failed is not None and not isinstance(publisher.failed, Fenced):
            self._failures.append(f"{where}: {publisher.failed}")
        if publisher.dropped:
            self._failures.append(f"{where}: {publisher.dropped} records too large")

    def _fenced(self, part: Partition) -> None:
        log.error("partition_fenced", partition=part.partition, topic=part.topic)
        self._publishers.pop(part, None)
        self._on_fenced(part)

    def _trouble(self, part: Partition, error: str | None) -> None:
        """A publisher could not commit for its retry window (error), or can again (None): readiness says so."""
        if error is None:
            if self.unservable.pop(part, None) is not None:
                log.warning("partition_publishing_again", topic=part.topic, partition=part.partition)
        elif part not in self.unservable:
            log.error("partition_cannot_publish", topic=part.topic, partition=part.partition, error=error)
            self.unservable[part] = error[:200]
