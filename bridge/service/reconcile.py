"""Reconciliation: what a newly assigned partition's ledger says is unfinished runs again, once, validated.

On assignment (after its publisher fenced the previous owner) the partition's ledger is read into the on-disk
index (by the broker's `catch_up`, `kafka.reader.read_to_end` on Kafka); runs still running here (the partition
came back) stay as they are. The unfinished ones are then taken a page at a time, as room allows, from the
consume loop: each record is re-validated exactly like the suggestion it claims to be
(`intake.accept_ledger_record`), what an earlier bridge left running of it is reaped, and it is batched to run
again. A record the bridge would not have accepted is a dead letter and a tombstone, so no later reconciliation
looks at it again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import structlog

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.messages import MessageError
from bridge.engine.ports import LedgerEntry
from bridge.kafka.base import Outgoing, PartitionSink
from bridge.kafka.offsets import Partition
from bridge.service.intake import Templates, accept_ledger_record
from bridge.service.ledger.index import IndexedRun, LedgerIndex
from bridge.service.ledger.lease import CLAIM_AHEAD, Claims, Owner, owner_record
from bridge.service.ledger.records import IndexSink, newer_version, parse_record
from bridge.service.ledger.topic_ledger import TopicLedger
from bridge.service.ownership import Ownership
from bridge.service.publishing import Publishers
from bridge.service.records import OffLoop
from bridge.service.refusals import DeadLetters
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem

log = structlog.get_logger(__name__)

PAGE = 256  # unfinished runs taken from the ledger index at a time, as room allows


class Reconciler:
    """Reads a partition's ledger at assignment, and runs its unfinished runs again a page at a time."""

    def __init__(
        self,
        settings: BridgeSettings,
        templates: Templates,
        *,
        index: LedgerIndex,
        registry: RunRegistry,
        ownership: Ownership,
        publishers: Publishers,
        dead_letters: DeadLetters,
        ledger: TopicLedger,
        read_ledger: Callable[[int, PartitionSink], Awaitable[None]],
        batch: Callable[[Partition, str, str, list[RunItem]], None],
        off_loop: OffLoop,
        claims: Claims,
    ) -> None:
        self._settings = settings
        self._templates = templates
        self._index = index
        self._registry = registry
        self._ownership = ownership
        self._publishers = publishers
        self._dead_letters = dead_letters
        self._ledger = ledger
        self._read_ledger = read_ledger
        self._batch = batch
        self._off_loop = off_loop
        self._claims = claims
        self._limits = settings.message_limits()
        self._backlog: set[Partition] = set()  # partitions with unfinished ledger runs not yet taken up

    async def reconcile(self, part: Partition, *, start_offset: int = 0) -> Owner | None:
        """Read `part`'s ledger to its end, and mark it this replica's (`lease.py`), claiming the first suggestion
        records from `start_offset`; its unfinished runs are then taken up by `take_backlog`. Returns the previous
        owner's marker when it died holding the partition (runs it could have started may have an attempt nothing
        recorded), else None."""
        publisher = await self._publishers.get(part)  # its start fenced the previous owner, aborting its transaction
        # What this replica queued itself is in the ledger before it is read. Results of its runs wait for the
        # reconciliation to end (`Operations.finish_run`): only attempt records of runs still here are queued now.
        await publisher.flush()
        # What this replica noted is tentative; the topic, read to its end, says what was committed.
        self._index.clear_local(part.partition)
        await self._read_ledger(part.partition, IndexSink(self._index))
        ours = [item.run.run_id for item in self._registry.of_partition(part)]
        self._index.note_many(part.partition, ours, "active")  # still running here: the partition came back
        previous = self._index.owner(part.partition)
        died = previous if previous is not None and previous.state == "acquired" else None
        log.info(
            "ledger_reconciled",
            partition=part.partition,
            previous_owner=previous.state if previous else None,
            **self._index.counts(part.partition),
        )
        self._backlog.add(part)
        # Committed before any run of it starts early: whoever reads `acquired` after this knows this replica may
        # have started runs it had no time to record, should it die holding the partition.
        claim = start_offset + CLAIM_AHEAD
        await self._publishers.publish_durably(
            part, owner_record(self._settings.topics.ledger, part, "acquired", claim)
        )
        self._claims.acquired(part, claim)
        return died

    def release(self, part: Partition) -> bool:
        """Queue the `released` marker of `part` after all this replica queued for it (the partition leaves
        cleanly); False when it was not queued (not owned any more)."""
        record = owner_record(self._settings.topics.ledger, part, "released")
        return self._publishers.publish(part, record) is not None

    def has_backlog(self, part: Partition) -> bool:
        """Whether `part`'s ledger still has unfinished runs this replica has not taken up."""
        return part in self._backlog

    def forget(self, parts: set[Partition]) -> None:
        """These partitions left: their backlog is their next owner's."""
        self._backlog -= parts
        self._claims.forget(parts)
        if self._ledger.early is not None:
            self._ledger.early.forget_partitions(parts)

    async def take_backlog(self) -> None:
        """Run again what the ledger has unfinished, a page at a time as room allows (memory is bounded by runs,
        however many the ledger holds)."""
        for part in sorted(self._backlog):
            if self._registry.room <= 0:
                return
            if not self._ownership.owns(part):
                self._backlog.discard(part)
                continue
            if not self._ownership.reconciled(part):
                continue  # being reconciled again (the listener runs beside the loop): its index is not settled
            rows = self._index.unfinished(part.partition, min(self._registry.room, PAGE))
            if not rows:
                self._backlog.discard(part)
                continue
            self._index.note_many(part.partition, [row.run_id for row in rows], "active")
            rerun: dict[tuple[str, str, int], list[RunItem]] = {}
            for row in rows:
                if row.run_id in self._registry:
                    continue  # running here already
                item = await self._rerun_item(part, row)
                if item is None:
                    continue
                if row.state == "dispatched" and item.record.attempt == 0 and self._ownership.suspected(part, None):
                    item = self._assume_first_attempt(part, item)  # granted: it may have started
                self._registry.add(item)
                self._ledger.prior_attempts[item.run.run_id] = LedgerEntry(
                    run_id=item.run.run_id, attempt=item.record.attempt, reattach_info=dict(item.record.dispatch or {})
                )
                rerun.setdefault((item.study, item.template, id(item.operation)), []).append(item)
            for (study, template, _), items in rerun.items():
                log.warning("runs_resumed_from_ledger", partition=part.partition, study=study, runs=len(items))
                self._batch(part, study, template, items)

    def _assume_first_attempt(self, part: Partition, item: RunItem) -> RunItem:
        """A run the partition's dead previous owner had granted an early start (`early_start.py`), so it could have
        started it with nothing more recorded: attempt 1 counts as made, durably (queued before any `released`
        marker), so it runs as attempt 2 here or at whoever takes it next."""
        record = item.record.model_copy(update={"attempt": 1})
        topic = self._settings.topics.ledger
        self._publishers.publish(
            part, Outgoing(topic, item.run.run_id.encode(), record.to_bytes(), partition=part.partition)
        )
        return dataclasses.replace(item, record=record)

    async def _rerun_item(self, part: Partition, row: IndexedRun) -> RunItem | None:
        """The run an unfinished ledger record stands for, validated like a suggestion; None (and a dead letter
        and a tombstone, so it is never looked at again) when it is not one the bridge would have accepted."""
        newer = newer_version(row.record)
        if newer is not None:
            # Written by a newer bridge (a rolling upgrade): not this version's to judge, still less to tombstone.
            # Kept as it is, and left to a replica that reads it; reported until then.
            log.warning("ledger_record_of_unknown_version", run_id=row.run_id[:200], schema=newer[:80])
            return None
        try:
            record = parse_record(row.record, self._limits)
            accepted = await self._off_loop(accept_ledger_record, record, self._templates, self._settings)
        except MessageError as exc:
            accepted = DeadLetterError.from_exception(exc)
        if isinstance(accepted, DeadLetterError):
            self._refuse(part, row, accepted)
            return None
        operation, run = accepted
        return RunItem(run=run, operation=operation, source=part, record=record)

    def _refuse(self, part: Partition, row: IndexedRun, error: DeadLetterError) -> None:
        topic = self._settings.topics.ledger
        self._dead_letters.of_ledger_row(part, topic, row, error)
        # A tombstone: compaction removes the record, and no later reconciliation refuses it again.
        self._publishers.publish(part, Outgoing(topic, row.run_id.encode(), None, partition=part.partition))
        self._index.note(part.partition, row.run_id, "finished")
