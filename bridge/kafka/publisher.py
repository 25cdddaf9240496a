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

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from bridge.config.settings import BridgeSettings
from bridge.errors import BrokerRefused, Fenced, PublishIncomplete, Retryable
from bridge.kafka.base import Outgoing
from bridge.kafka.connection import client_kwargs
from bridge.kafka.errors import from_the_broker, kafka_error, publishing_may_go_on, refuses_the_record
from bridge.kafka.lookups import Lookups
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.kafka.reader import read_tail

log = structlog.get_logger(__name__)

# `kafka.commit_interval_ms` is the least time between a commit and the next transaction (2 ms by default). The
# broker writes a transaction's markers just after answering its commit; a transaction begun before that is refused
# with ConcurrentTransactions, and aiokafka then waits 20 ms (measured on one local broker: a transaction takes ~1 ms,
# ~22 ms at p90 back to back, ~1 ms at p90 with a 1 ms gap). Records that arrive meanwhile join the next transaction:
# a group commit every few ms, or every interval a user sets (fewer transactions per result for the broker, each
# result visible that much later).

MAX_SHEDDABLE_QUEUED = 1000
"""Progress events of one partition waiting for the broker: past it, new ones are left out (they are optional;
results, ledger records and operation events are bounded by the runs in flight and never left out)."""


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
        exactly_once: bool = True,
    ) -> None:
        self._settings = settings
        # False: no transaction, no ledger record, no offset (what the guarantees cost, measured by
        # benchmarks/serve_throughput.py). Only a constructor argument, so no configuration can turn it off.
        self._exactly_once = exactly_once
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
        self._starting: asyncio.Future[None] | None = None
        self._in_transaction: asyncio.Future[None] | None = None  # done when the batch being committed is
        self.failed: BaseException | None = None
        self._pending: list[Outgoing] = []  # the batch of the transaction under way, less what the broker refused
        self._committed_at = 0.0  # monotonic time the last committed transaction began (the lease)
        self._ended_at = 0.0  # monotonic time the last transaction's commit was answered (the interval)
        self._interval_s = settings.kafka.commit_interval_ms / 1000
        self._attempt_began = 0.0
        self._sheddable = 0  # sheddable records in `_queue`
        self._unsure = False  # the last attempt failed after its commit was sent: it may have committed
        self.shed = 0  # sheddable records left out: too many were waiting for the broker

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_kwargs(self._settings.kafka),
            transactional_id=self.transactional_id if self._exactly_once else None,
            enable_idempotence=self._exactly_once,
            acks="all",
            max_request_size=max(self._settings.limits.max_record_bytes * 2, 1024 * 1024),
            # No linger: a transaction sends what it holds at once and waits for it, so a linger would only be
            # added to every commit (and to the start of every run that waits for its `dispatched` record).
            linger_ms=0,
            # aiokafka waits this long after ConcurrentTransactions, which follows every quick commit.
            retry_backoff_ms=20,
        )

    async def start(self) -> None:
        """Connect; starting the producer fences any earlier owner of the same transactional id and aborts its
        open transaction, so what this replica reads next is final."""
        # Shielded: aiokafka cancelled while it opens a connection loses that connection (it is in no table that
        # stop() closes). A start cut short (the rebalance callback cancelled by the consumer's stop) lets it end,
        # then stops the producer, so its connections close now, not whenever the garbage collector finds them.
        starting = self._starting = asyncio.ensure_future(self._producer.start())
        try:
            await asyncio.shield(starting)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                await starting
            with contextlib.suppress(Exception):
                await self._producer.stop()
            mapped = kafka_error(exc, f"start the producer of {self.transactional_id}")  # a broker away: Retryable
            self._started.set_exception(mapped)
            self._started.exception()
            if mapped is exc:
                raise
            raise mapped from exc
        self._task = asyncio.create_task(self._loop(), name=f"publisher-{self.transactional_id}")
        self._started.set_result(None)

    async def started(self) -> None:
        """Wait until `start()` has fenced the previous owner (whoever called it)."""
        await asyncio.shield(self._started)

    def publish(self, record: Outgoing, *, replacing: Outgoing | None = None) -> asyncio.Future[None]:
        """Queue a record for the next transaction; the future is done when that transaction is committed.
        `replacing`: a record queued before that this one makes redundant; if it has not left yet, this one takes
        its place in the queue (same order, one record less)."""
        if self.failed is not None:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(Fenced(str(self.failed)))
            return failed
        if replacing is not None and self._substitute(replacing, record):
            return self._next
        if record.sheddable:
            if self._sheddable >= MAX_SHEDDABLE_QUEUED:  # the broker is away: progress piles up, the rest is bounded
                self.shed += 1
                if self.shed == 1 or self.shed % 1000 == 0:
                    log.warning("progress_shed", transactional_id=self.transactional_id, shed=self.shed)
                shed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                shed.set_result(None)
                return shed
            self._sheddable += 1
        self._queue.append(record)
        self._wakeup.set()
        return self._next

    def substitute(self, old: Outgoing, new: Outgoing) -> asyncio.Future[None] | None:
        """`new` in the place of `old` if `old` is still queued (the future of their transaction), else None."""
        return self._next if self.failed is None and self._substitute(old, new) else None

    def _substitute(self, old: Outgoing, new: Outgoing) -> bool:
        for i in range(len(self._queue) - 1, -1, -1):  # it was queued lately: look from the end
            if self._queue[i] is old:
                self._queue[i] = new
                return True
        return False

    def committed_within(self, seconds: float) -> bool:
        """Whether a transaction of this producer committed in the last `seconds`: the broker then still took it
        as the partition's owner (`lease.py`)."""
        return self.failed is None and time.monotonic() - self._committed_at < seconds

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
        if self._starting is not None:
            # A start under way (a rebalance beside the shutdown) ends first: stopped mid-start, the producer
            # would go on connecting after its stop.
            await asyncio.wait([self._starting])
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
            # From the commit's answer: the broker writes the markers after it, and a transaction begun before
            # they are written waits 20 ms in aiokafka (ConcurrentTransactions).
            if (gap := self._ended_at + self._interval_s - time.monotonic()) > 0:
                await asyncio.sleep(gap)
            self._wakeup.clear()
            batch, self._queue, self._sheddable = self._queue, [], 0
            done, self._next = self._next, asyncio.get_running_loop().create_future()
            self._in_transaction = done
            for record in batch:
                if record.completes is not None:
                    self._tracker.done(self._source, record.completes)
            offset = self._tracker.committable(self._source)
            try:
                if batch or offset is not None:
                    await self._transaction(batch, offset)
                    # From before its commit was sent, not from its reply: a loop stalled on the reply must not
                    # count a fresh lease (`lease.py`).
                    self._committed_at = self._attempt_began
                    self._ended_at = time.monotonic()
            except asyncio.CancelledError:
                # Closed: not a failure of the partition (close() says whether anything was left unpublished).
                _fail((done, self._next), Fenced("publisher closed"))
                raise
            except Exception as exc:
                await self._stop_for_good(exc, done)
                return
            if not done.done():
                done.set_result(None)

    async def _stop_for_good(self, exc: Exception, done: asyncio.Future[None]) -> None:
        """Fenced, or refused for good: nothing more is published from here, and the service is told."""
        self.failed = exc
        _fail((done, self._next), Fenced(f"{self.transactional_id}: {exc}"))
        with contextlib.suppress(Exception):
            await self._producer.stop()  # its connections close now: nobody closes a publisher it dropped
        log.error("publisher_stopped", transactional_id=self.transactional_id, error=f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, Fenced) and self._on_trouble is not None:
            self._on_trouble(self._source, str(exc))  # refused for good: readiness names the partition
        if self._on_fenced is not None:
            self._on_fenced(self._source)

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
        self._pending = self._fitting(batch)
        retrying = AsyncRetrying(
            retry=retry_if_exception(publishing_may_go_on),
            wait=wait_exponential(multiplier=0.2, max=5),
            before_sleep=lambda state: self._before_retry(state, began),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    await self._renew_producer()  # an aborted transaction can leave the producer unusable
                    if self._unsure and await self._landed(offset):
                        # The commit failed on its way back (aiokafka's "Unexpected error during batch delivery"
                        # after EndTxn): the broker had committed it. Sending the batch again would publish it twice.
                        log.warning("transaction_had_committed", transactional_id=self.transactional_id)
                        break
                await self._attempt(offset)
        if retrying.statistics.get("attempt_number", 1) > 1 and self._on_trouble is not None:
            self._on_trouble(self._source, None)
        if self._on_commit is not None:
            self._on_commit(len(self._pending), time.monotonic() - began)

    async def _attempt(self, offset: int | None) -> None:
        self._attempt_began = time.monotonic()
        if not self._exactly_once:
            await self._send_plainly()
            return
        futures: list[asyncio.Future[object]] = []
        self._unsure = False
        try:
            async with self._producer.transaction():
                for r in self._pending:
                    futures.append(await self._producer.send(r.topic, r.value, key=r.key, partition=r.partition))
                if futures:
                    # Acknowledged before the offsets join the transaction: the broker verifies each produce with the
                    # transaction coordinator (KIP-890), and an AddOffsetsToTxn under way there makes that check
                    # fail as a retriable NOT_ENOUGH_REPLICAS, which aiokafka waits out (retry_backoff_ms).
                    await asyncio.gather(*futures)
                if offset is not None:
                    tp = TopicPartition(self._source.topic, self._source.partition)
                    await self._producer.send_offsets_to_transaction(
                        {tp: OffsetAndMetadata(offset, "")}, self._settings.kafka.group_id
                    )
                self._unsure = True  # from here, a failure may come after the broker committed (the commit's reply)
        except Exception as exc:
            refused = _refused(self._pending, futures, exc) if from_the_broker(exc) else []
            for r in refused:
                self._drop(r, f"{type(exc).__name__}: {exc}")
            self._pending = [r for r in self._pending if r not in refused]
            doing = f"commit a transaction of {self.transactional_id}"
            error = kafka_error(exc, doing)
            if refused or not isinstance(error, Fenced | BrokerRefused | Retryable):
                # A refused record is left out: what remains is worth another try. So is a transaction that failed
                # in a way aiokafka does not type (its sender dies with a bare error after a broker restart).
                error = Retryable(f"{doing}: {type(exc).__name__}: {exc}")
            raise error from exc

    async def _landed(self, offset: int | None) -> bool:
        """Whether the transaction of `_pending` whose commit failed on its way back was committed after all: the
        group's offset reached `offset`, or (no offset in it) its ledger records are the last ones committed to
        the ledger partition, which only this partition's publisher writes. Unsure (neither to compare): False."""
        try:
            if offset is not None:
                return (await self._committed_offset() or 0) >= offset
            ledger = [(r.key, r.value) for r in self._pending if r.topic == self._settings.topics.ledger]
            return bool(ledger) and await self._ledger_tail(len(ledger)) == ledger
        except Exception as exc:  # cannot tell: trying again is what it did before
            log.warning("transaction_outcome_unknown", transactional_id=self.transactional_id, error=str(exc))
            return False

    async def _committed_offset(self) -> int | None:
        async with Lookups(self._settings.kafka) as lookups:
            return await lookups.committed(self._settings.kafka.group_id, self._source)

    async def _ledger_tail(self, count: int) -> list[tuple[bytes | None, bytes | None]]:
        """The last `count` committed records of the ledger partition of this publisher's number."""
        return await read_tail(self._settings, Partition(self._settings.topics.ledger, self._source.partition), count)

    async def _send_plainly(self) -> None:
        """The benchmark's path without guarantees: what users see (results, events), acknowledged, and nothing
        that makes it exactly once (no ledger record, no transaction, no committed offset)."""
        ledger = self._settings.topics.ledger
        futures = [
            await self._producer.send(r.topic, r.value, key=r.key, partition=r.partition)
            for r in self._pending
            if r.topic != ledger
        ]
        await asyncio.gather(*futures)

    def _before_retry(self, state: RetryCallState, began: float) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "transaction_retry", transactional_id=self.transactional_id, attempt=state.attempt_number, error=str(error)
        )
        if time.monotonic() - began > self._retry_for_s and self._on_trouble is not None:
            self._on_trouble(self._source, str(error))

    async def _renew_producer(self) -> None:
        """A new producer with the same transactional id: it re-initialises the transaction state (and aborts
        whatever the old one left open). Never for a partition another replica owns: that would fence it."""
        with contextlib.suppress(Exception):
            await self._producer.stop()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(publishing_may_go_on), wait=wait_exponential(multiplier=0.2, max=5), reraise=True
        ):
            with attempt:
                if self._owns is not None and not self._owns(self._source):
                    raise Fenced(f"{self._source} now belongs to another replica")
                self._producer = self._new_producer()
                try:
                    await self._producer.start()
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        await self._producer.stop()
                    raise kafka_error(exc, f"restart the producer of {self.transactional_id}") from exc


def _refused(batch: list[Outgoing], futures: list[asyncio.Future[object]], exc: BaseException) -> list[Outgoing]:
    """The records the broker refused for good (a record-level refusal on their own send), if any is known."""
    out = []
    for record, future in zip(batch, futures, strict=False):
        if future.done() and not future.cancelled() and refuses_the_record(future.exception()):
            out.append(record)
    if not out and refuses_the_record(exc) and len(futures) < len(batch):
        out.append(batch[len(futures)])  # refused by send() itself, before a future existed
    return out


def _fail(futures: tuple[asyncio.Future[None], ...], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved: nobody may be waiting
