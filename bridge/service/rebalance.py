"""What a rebalance does to this replica: partitions leave (maybe for a moment), partitions come (their previous
owner fenced, their ledger reconciled), and runs of partitions gone for good are handed over.

aiokafka revokes every partition at each rebalance (no cooperative protocol) and most of them come back, so a
revoke only commits what is done and stops publishing; runs go on until the assignment that follows tells which
partitions are gone, and only theirs are stopped (their new owner runs them again from the ledger).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from bridge.contract.results import StopReason
from bridge.errors import BrokerRefused, Fenced, Retryable
from bridge.kafka.base import TopicPartitionLike
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.consume import ConsumeLoop
from bridge.service.operations import Operations
from bridge.service.ownership import Ownership
from bridge.service.publishing import Publishers
from bridge.service.reconcile import Reconciler
from bridge.service.registry import RunRegistry
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)

RECONCILE_RETRY_S = 60.0  # how long a reconciliation the broker refuses is tried again before the replica gives up


def _names(tps: list[TopicPartitionLike]) -> list[str]:
    return [f"{tp.topic}:{tp.partition}" for tp in tps]


class Rebalance:
    """The consumer's rebalance listener (a `kafka.base.RebalanceListener`)."""

    def __init__(
        self,
        suggestions_topic: str,
        *,
        loop: ConsumeLoop,
        ownership: Ownership,
        publishers: Publishers,
        tracker: OffsetTracker,
        registry: RunRegistry,
        operations: Operations,
        reconciler: Reconciler,
        telemetry: Telemetry,
        on_revoked: Callable[[set[Partition]], None] = lambda parts: None,
        on_fatal: Callable[[str], None] = lambda why: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._suggestions = suggestions_topic
        self._loop = loop
        self._ownership = ownership
        self._publishers = publishers
        self._tracker = tracker
        self._registry = registry
        self._operations = operations
        self._reconciler = reconciler
        self._telemetry = telemetry
        self._on_revoked = on_revoked
        self._on_fatal = on_fatal
        self._stopping = stopping
        self._generations: dict[Partition, int | None] = {}  # the generation of each partition's last assignment

    def _one_generation_on(self, part: Partition, generation: int | None) -> bool:
        """Whether `part`, assigned again in `generation`, was last assigned here in the one before (nobody else
        can have had it in between); unknown generations are taken as the one after (the broker did not tell)."""
        last = self._generations.get(part)
        return generation is None or last is None or generation == last + 1

    async def on_partitions_revoked(self, revoked: list[TopicPartitionLike]) -> None:
        """Commit what is done on the partitions leaving and stop publishing for them."""
        parts = {Partition(tp.topic, tp.partition) for tp in revoked}
        self.release(parts)  # before anything is forgotten: whether it may be released depends on it
        self._loop.revoked(parts)
        self._ownership.revoke(parts)
        self._reconciler.forget(parts)
        self._on_revoked(parts)
        # All at once: the group waits for this listener before anyone gets a partition again, and each close
        # may wait for its last transaction.
        await asyncio.gather(*(self._publishers.close(part) for part in parts))
        for part in parts:
            self._tracker.revoke(part)
            self._telemetry.forget_partition(part.topic, part.partition)
        if revoked:
            log.info("partitions_revoked", partitions=_names(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartitionLike], generation: int | None = None) -> None:
        """Fence each new partition's previous owner, hand over the runs of partitions gone, then reconcile."""
        log.info("partitions_assigned", partitions=_names(assigned), generation=generation)  # before `bridge_ready`
        for tp in assigned:
            await self._loop.assigned(tp)
        parts = {Partition(tp.topic, tp.partition) for tp in assigned}
        back, gone = self._ownership.assign(parts)
        self.hand_over(gone)
        # Back after more than one generation: the group went on without this replica meanwhile (its session
        # expired while it was cut off or paused), and another replica may have owned these and run their runs.
        # What still runs here of them is stale: stopped and forgotten, and the ledger says what is left to run.
        missed = {p for p in back if not self._one_generation_on(p, generation)}
        if missed:
            log.warning("partitions_back_after_others", partitions=sorted(f"{p.topic}:{p.partition}" for p in missed))
            self.hand_over(missed)
        for part in parts:
            self._generations[part] = generation
        for tp in assigned:
            part = Partition(tp.topic, tp.partition)
            if tp.topic == self._suggestions:
                await self._reconcile(part)
            self._ownership.mark_reconciled(part)  # its records wait for this, whatever came of it
            for item, result in self._ownership.unpark(part):  # finished while handed over, or reconciled
                self._operations.finish_run(item, result)
        self._ownership.close_gaps(back | gone)

    async def _reconcile(self, part: Partition) -> None:
        """Reconcile `part`, trying again (a hiccup must not stall the replica: aiokafka swallows what this listener
        raises, and the partition's records would wait for good): for as long as the broker is away, and up to
        `RECONCILE_RETRY_S` when it refuses. Fenced meanwhile: the partition is another replica's. The replica
        stopping (SIGTERM): it lets the partition go, so the drain is not held up. Still refused after
        `RECONCILE_RETRY_S`: the replica cannot serve it, and stops (`on_fatal`) so that the group gives the
        partition to a replica that can."""

        def give_up(state: RetryCallState) -> bool:
            if self._stopping():
                return True
            away = isinstance(state.outcome.exception() if state.outcome else None, Retryable | TimeoutError | OSError)
            return not away and state.seconds_since_start is not None and state.seconds_since_start > RECONCILE_RETRY_S

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, Retryable | BrokerRefused | TimeoutError | OSError)),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=give_up,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        log.warning(
                            "reconcile_retry", partition=part.partition, attempt=attempt.retry_state.attempt_number
                        )
                    start = self._loop.handled_up_to(part)
                    died = await self._reconciler.reconcile(part, start_offset=start)
        except Fenced:
            log.warning("partition_fenced_while_reconciled", partition=part.partition)
            self.fenced(part)
            return
        except Exception as exc:
            why = f"could not reconcile {part.topic}:{part.partition}: {type(exc).__name__}: {exc}"
            if self._stopping():  # shutting down: let it go, its next owner reconciles it
                log.info("reconcile_given_up_on_shutdown", partition=part.partition, error=why)
                self.fenced(part)
                return
            log.error("reconcile_failed", partition=part.partition, error=why)
            self.fenced(part)  # nothing of it runs or is published here any more
            self._on_fatal(why)
            return
        if died is not None:
            # Its previous owner died holding it: what it claimed, and had received, may have run unrecorded; its
            # claim may reach past the partition's end now (a paused owner reads on when it wakes).
            below = died.claim or 0
            self._ownership.suspect(part, below)
            log.warning("partition_taken_from_dead_owner", partition=part.partition, suspect_below=below)

    def release(self, parts: set[Partition]) -> None:
        """Mark the suggestion partitions of `parts` released (`lease.py`): this replica lets them go cleanly, and
        all it started of them is queued before the marker. Not when it still owes them a first attempt a dead
        predecessor may have made (records it has not handled yet, or ledger runs not taken up): their next owner
        must then assume the worst, as this replica did."""
        for part in parts:
            if part.topic != self._suggestions or not self._ownership.owns(part):
                continue
            if self._ownership.suspected(part, None) and (
                self._reconciler.has_backlog(part) or self._ownership.suspected(part, self._loop.handled_up_to(part))
            ):
                log.info("partition_left_suspect", partition=part.partition)
                continue
            self._reconciler.release(part)

    def hand_over(self, gone: set[Partition]) -> None:
        """Stop and forget the runs of partitions that another replica owns now."""
        if not gone:
            return
        for part in gone:
            for item, _ in self._ownership.unpark(part):
                self._registry.pop(item.run.run_id)
        for item in self._operations.discard(gone):
            self._registry.pop(item.run.run_id)
        for part in gone:
            for item in self._registry.of_partition(part):
                self.lost_run(item.run.run_id)
        log.info("partitions_handed_over", partitions=sorted(f"{p.topic}:{p.partition}" for p in gone))

    def fenced(self, part: Partition) -> None:
        """Another replica took `part` while this one published for it: its runs, batched ones too, are the other
        replica's now."""
        self._ownership.drop(part)
        self.hand_over({part})

    def lost_run(self, run_id: str) -> None:
        """This replica may no longer publish for this run: stop it (its new owner runs it again)."""
        item = self._registry.pop(run_id)
        owner = self._registry.owner(run_id)
        if owner is not None:
            owner.stop_run(run_id, "partition moved to another replica", kind=StopReason.INTERRUPTED)
        if item is not None:
            log.info("run_handed_over", run_id=run_id, partition=item.source.partition)
