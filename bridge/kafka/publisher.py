"""Publishing what a suggestions partition caused, exactly once: ledger records, results, progress, operation
events and dead letters go out in Kafka transactions, together with the consumed offsets they complete.

One transactional producer per input partition, its transactional id derived from the group, topic and
partition: aiokafka's `send_offsets_to_transaction` carries no consumer generation (no KIP-447 fencing), so a
stable id per partition is what fences a zombie owner after a rebalance (aiokafka#844). Records wait in a queue
and leave in batches (one transaction per batch), which is what keeps the guarantee cheap. A broker that goes
away is waited for (a new producer with the same id, exponential backoff) up to `retry_for_s`; a fenced
producer stops for good and tells its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from bridge.config import BridgeSettings
from bridge.kafka.connection import client_kwargs
from bridge.offsets import OffsetTracker, Partition

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish, the partition it must go to (None: by key), and the unit of work (a consumed
    record's offset) it completes, if any."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    completes: int | None = None
    partition: int | None = None


class Fenced(Exception):
    """Another replica owns this partition now: nothing more is published from here."""


class PublishIncomplete(Exception):
    """Closing a publisher left records it could not commit."""


class PartitionPublisher:
    """Owns the transactional producer of one input partition and publishes its records in transactions."""

    def __init__(
        self,
        settings: BridgeSettings,
        source: Partition,
        tracker: OffsetTracker,
        *,
        on_commit: Callable[[int, float], None] | None = None,
        on_fenced: Callable[[Partition], None] | None = None,
        owns: Callable[[Partition], bool] | None = None,
        on_trouble: Callable[[Partition, str | None], None] | None = None,
        retry_for_s: float = 180.0,
    ) -> None:
        self._settings = settings
        self._source = source
        self._tracker = tracker
        self._queue: list[Outgoing] = []
        self._wakeup = asyncio.Event()
        self._next: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_commit = on_commit
        self._on_fenced = on_fenced
        self._retry_for_s = retry_for_s
        self._on_trouble = on_trouble
        self._max_record_bytes = settings.limits.max_record_bytes + 4096  # the few fields around a capped value
        self.dropped = 0  # records that could never be published (too large for the broker): logged, counted
        self._owns = owns
        self.transactional_id = f"{settings.kafka.group_id}.{source.topic}.{source.partition}"
        self._producer = self._new_producer()
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_transaction: asyncio.Future[None] | None = None  # done when the batch being committed is
        self.failed: BaseException | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_kwargs(self._settings.kafka),
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            max_request_size=max(self._settings.limits.max_record_bytes * 2, 1024 * 1024),
            linger_ms=5,
            # aiokafka waits this long after ConcurrentTransactions, which follows every quick commit.
            retry_backoff_ms=20,
        )

    async def start(self) -> None:
        """Connect; starting the producer fences any earlier owner of the same transactional id and aborts its
        open transaction, so what this replica reads next is final."""
        try:
            await self._producer.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            self._started.exception()
            raise
        self._task = asyncio.create_task(self._loop(), name=f"publisher-{self.transactional_id}")
        self._started.set_result(None)

    async def started(self) -> None:
        """Wait until `start()` has fenced the previous owner (whoever called it)."""
        await asyncio.shield(self._started)

    def publish(self, record: Outgoing) -> asyncio.Future[None]:
        """Queue a record for the next transaction; the future is done when that transaction is committed."""
        if self.failed is not None:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(Fenced(str(self.failed)))
            return failed
        self._queue.append(record)
        self._wakeup.set()
        return self._next

    def complete(self) -> asyncio.Future[None]:
        """Commit newly committable offsets (work done with nothing to publish) in the next transaction."""
        self._wakeup.set()
        return self._next

    async def flush(self) -> None:
        """Wait until everything queued so far is committed, including the batch in its transaction right now
        (its queue is already empty: without waiting for it, a close would cancel that transaction)."""
        if self._in_transaction is not None and not self._in_transaction.done():
            await asyncio.shield(self._in_transaction)
        if self._queue or self._wakeup.is_set():
            await asyncio.shield(self._next)

    def _busy(self) -> bool:
        in_transaction = self._in_transaction is not None and not self._in_transaction.done()
        return in_transaction or bool(self._queue) or self._wakeup.is_set()

    async def _settle(self) -> None:
        """Flush until nothing is queued or in a transaction (a flush can wake the loop for one more commit)."""
        while self._busy():
            await self.flush()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued, then stop; raises `PublishIncomplete` when what was queued could not be
        committed within `timeout_s` (a fenced publisher's work belongs to the partition's new owner)."""
        unpublished: BaseException | None = None
        if self._task is not None and self.failed is None:
            try:
                await asyncio.wait_for(self._settle(), timeout_s)
            except Fenced:
                pass
            except Exception as exc:  # a timeout or a broker error: say so, after stopping
                unpublished = exc
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if not self._next.done():
            self._next.set_exception(Fenced("publisher closed"))
            self._next.exception()  # retrieved: nobody may be waiting
        with contextlib.suppress(Exception):
            await self._producer.stop()
        if unpublished is not None:
            raise PublishIncomplete(f"{self.transactional_id}: not all was published: {unpublished!r}")

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            done, self._next = self._next, asyncio.get_running_loop().create_future()
            self._in_transaction = done
            for record in batch:
                if record.completes is not None:
                    self._tracker.done(self._source, record.completes)
            offset = self._tracker.committable().get(self._source)
            try:
                if batch or offset is not None:
                    await self._transaction(batch, offset)
            except asyncio.CancelledError:
                # Closed: not a failure of the partition (close() says whether anything was left unpublished).
                for future in (done, self._next):
                    if not future.done():
                        future.set_exception(Fenced("publisher closed"))
                        future.exception()
                raise
            except Exception as exc:
                self.failed = exc
                error = Fenced(f"{self.transactional_id}: {exc}")
                for future in (done, self._next):
                    if not future.done():
                        future.set_exception(error)
                        future.exception()
                log.error("publisher_stopped", transactional_id=self.transactional_id, error=str(exc))
                if self._on_fenced is not None:
                    self._on_fenced(self._source)
                return
            if not done.done():
                done.set_result(None)

    def _drop(self, record: Outgoing, reason: str) -> None:
        self.dropped += 1
        log.error(
            "record_dropped",
            transactional_id=self.transactional_id,
            topic=record.topic,
            bytes=len(record.value or b""),
            reason=reason,
        )

    def _fitting(self, batch: list[Outgoing]) -> list[Outgoing]:
        out = []
        for r in batch:
            if len(r.value or b"") + len(r.key or b"") > self._max_record_bytes:
                self._drop(r, "larger than limits.max_record_bytes")
            else:
                out.append(r)
        return out

    async def _transaction(self, batch: list[Outgoing], offset: int | None) -> None:
        """Publish `batch` and commit `offset` in one transaction. A record the broker refuses for good (too large,
        invalid) is left out and logged, so it never blocks the partition; a broker that is away is waited for
        with backoff, without end, and after `retry_for_s` the partition is reported as not served (readiness)."""
        began = time.monotonic()
        deadline = began + self._retry_for_s
        attempt = 0
        batch = self._fitting(batch)
        while True:
            attempt += 1
            futures: list[asyncio.Future[object]] = []
            try:
                async with self._producer.transaction():
                    for r in batch:
                        futures.append(await self._producer.send(r.topic, r.value, key=r.key, partition=r.partition))
                    if offset is not None:
                        tp = TopicPartition(self._source.topic, self._source.partition)
                        await self._producer.send_offsets_to_transaction(
                            {tp: OffsetAndMetadata(offset, "")}, self._settings.kafka.group_id
                        )
                    if futures:
                        await asyncio.gather(*futures)
                break
            except ProducerFenced:
                raise  # another owner took this partition: never publish again from here
            except KafkaError as exc:
                refused = _refused(batch, futures, exc)
                if refused:
                    for r in refused:
                        self._drop(r, f"{type(exc).__name__}: {exc}")
                    batch = [r for r in batch if r not in refused]
                    await self._renew_producer(None)  # the aborted transaction leaves the producer unusable
                    continue
                if time.monotonic() > deadline and self._on_trouble is not None:
                    self._on_trouble(self._source, f"{type(exc).__name__}: {exc}")
                log.warning(
                    "transaction_retry", transactional_id=self.transactional_id, attempt=attempt, error=str(exc)
                )
                await asyncio.sleep(min(0.2 * 2**attempt, 5))  # backoff before a new producer tries again
                await self._renew_producer(None)
        if attempt > 1 and self._on_trouble is not None:
            self._on_trouble(self._source, None)
        if self._on_commit is not None:
            self._on_commit(len(batch), time.monotonic() - began)

    async def _renew_producer(self, deadline: float | None) -> None:
        # After a broker outage the producer's transaction state can be unusable; a new one with the same id
        # re-initialises it (and aborts whatever the old one left open).
        with contextlib.suppress(Exception):
            await self._producer.stop()
        while True:
            if self._owns is not None and not self._owns(self._source):
                # A new producer would fence the partition's new owner: never do that.
                raise Fenced(f"{self._source} now belongs to another replica")
            self._producer = self._new_producer()
            try:
                await self._producer.start()
                return
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                if deadline is not None and time.monotonic() > deadline:
                    raise
                log.warning("producer_restart_retry", transactional_id=self.transactional_id, error=str(exc))
                await asyncio.sleep(1.0)


def _refused(batch: list[Outgoing], futures: list[asyncio.Future[object]], exc: KafkaError) -> list[Outgoing]:
    """The records the broker refused for good (a non-retriable error on their own send), if any is known."""
    out = []
    for record, future in zip(batch, futures, strict=False):
        if future.done() and not future.cancelled():
            error = future.exception()
            if isinstance(error, KafkaError) and not error.retriable:
                out.append(record)
    if not out and not exc.retriable and len(futures) < len(batch):
        out.append(batch[len(futures)])  # refused by send() itself, before a future existed
    return out
