"""One consumed record, from its bytes to the runs it causes or to its one dead letter.

The record waits for its partition's reconciliation, then: a control record goes to `Control`; a suggestions
record is validated (`intake.accept`), sorted by what the ledger already knows (`admission.admit`: fresh,
waiting, replay, refusal, conflict), sized, and its fresh runs are registered with a `received` ledger record
(or, while there is room, an early-start grant in its place: `early_start.py`) that commits with the consumed
offset; so do the failed answers to its refused suggestions, each with its
`finished` ledger record, and its one dead letter. Whatever goes wrong with one record, it ends in a dead letter
(`internal_error`, logged with its traceback), and the loop goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetterError
from bridge.kafka.base import ConsumedRecord, Outgoing, TopicPartitionLike
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.polyaxon import V1Operation
from bridge.service.admission import Admission, admit
from bridge.service.answers import refusal_record, refusal_result
from bridge.service.control import Control
from bridge.service.intake import Accepted, Refused, Templates, accept
from bridge.service.ledger.early_start import EarlyStarts
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ownership import Ownership
from bridge.service.publishing import Publishers
from bridge.service.refusals import DeadLetters
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem, fit_result, received_record
from bridge.service.telemetry import Telemetry

log = structlog.get_logger(__name__)
T = TypeVar("T")

OffLoop = Callable[..., Awaitable[Any]]
"""Runs a blocking function where it cannot freeze the event loop: `await off_loop(fn, *args)`."""


class Records:
    """Handles the records of the suggestions and control topics, one at a time."""

    def __init__(
        self,
        settings: BridgeSettings,
        templates: Templates,
        *,
        index: LedgerIndex,
        registry: RunRegistry,
        ownership: Ownership,
        publishers: Publishers,
        tracker: OffsetTracker,
        dead_letters: DeadLetters,
        control: Control,
        telemetry: Telemetry,
        batch: Callable[[Partition, str, str, list[RunItem]], None],
        off_loop: OffLoop,
        early: EarlyStarts | None = None,
    ) -> None:
        self._settings = settings
        self._templates = templates
        self._index = index
        self._registry = registry
        self._ownership = ownership
        self._publishers = publishers
        self._tracker = tracker
        self._dead_letters = dead_letters
        self._control = control
        self._telemetry = telemetry
        self._batch = batch
        self._off_loop = off_loop
        self._early = early

    async def handle(self, tp: TopicPartitionLike, record: ConsumedRecord) -> None:
        """Handle one record; returns once its runs are registered or its dead letter is queued."""
        part = Partition(tp.topic, tp.partition)
        await self._ownership.wait_reconciled(part)
        if not self._ownership.owns(part):
            # Revoked before it was reconciled: not handled, so not committed; its next owner reads it again.
            log.info("record_left_for_next_owner", partition=part.partition, offset=record.offset)
            return
        publisher = await self._publishers.get(part)
        try:
            if tp.topic == self._settings.topics.control:
                # Its runs are those of the suggestions partition of the same number (`control.py`): read first.
                runs = Partition(self._settings.topics.suggestions, part.partition)
                if self._ownership.owns(runs):
                    await self._ownership.wait_reconciled(runs)
                self._control.handle(part, record, local=self._ownership.owns(runs))
                publisher.complete()
            else:
                await self._suggestions(part, record)
        except Exception as exc:
            # The last line of defence: whatever one record does, it ends in a dead letter and the loop goes on.
            log.exception("record_failed", partition=part.partition, offset=record.offset)
            error = DeadLetterError(type="internal_error", message=f"{type(exc).__name__}: {exc}")
            self._tracker.add(part, record.offset, 1)
            self._dead_letters.of_record(part, record, error)

    async def _suggestions(self, part: Partition, record: ConsumedRecord) -> None:
        outcome = await self._off_loop(accept, record.value or b"", self._templates, self._settings)
        if isinstance(outcome, DeadLetterError):
            self._refuse(part, record, outcome)
            return
        admission = admit(outcome, self._registry, self._index)
        prepared = (
            [] if outcome.operation is None else self._prepare(part, record, outcome, outcome.operation, admission)
        )
        letter = admission.dead_letter
        units = len(prepared) + len(admission.replays) + len(admission.answers) + (1 if letter is not None else 0)
        self._tracker.add(part, record.offset, units)
        if admission.waiting:
            log.info("suggestions_already_known", study=outcome.study, count=admission.waiting, offset=record.offset)
            self._telemetry.suggestion_received(outcome.template, "duplicate", admission.waiting)
        results = self._settings.topics.results
        for copy in admission.replays:
            out = Outgoing(results, outcome.study.encode(), copy.to_json().encode(), completes=record.offset)
            self._publishers.publish(part, out)
        if admission.replays:
            self._telemetry.suggestion_received(outcome.template, "replayed", len(admission.replays))
        for refused, print_ in admission.answers:
            self._answer(part, record, outcome, refused, print_)
        if letter is not None:
            self._dead_letters.of_record(part, record, letter)
        if units == 0:
            (await self._publishers.get(part)).complete()
            return
        if prepared:
            self._register(part, record, outcome.study, outcome.template, prepared)

    def _prepare(
        self, part: Partition, record: ConsumedRecord, outcome: Accepted, operation: V1Operation, admission: Admission
    ) -> list[tuple[RunItem, bytes]]:
        """The fresh runs' items and `received` records, built and sized before anything is registered. A run whose
        record would be too large is refused like a suggestion with bad params: a failed answer (in
        `admission.answers`) and the record's dead letter; the message's other suggestions still run."""
        inline = None
        if operation is not self._templates.get(outcome.template):
            inline = operation.model_dump(mode="json", by_alias=True, exclude_none=True)
        limit = self._settings.limits.max_record_bytes
        prepared: list[tuple[RunItem, bytes]] = []
        # A dead previous owner could have started these with nothing recorded: attempt 1 counts as made (`lease.py`).
        attempt = 1 if self._ownership.suspected(part, record.offset) else 0
        for run, print_ in admission.fresh:
            ledger_record = received_record(run, outcome.study, outcome.template, inline, print_, attempt=attempt)
            value = ledger_record.to_bytes()
            if len(value) > limit:
                error = DeadLetterError(
                    type="record_too_large",
                    field=f"suggestions[{run.index}]",
                    message=f"its params and metadata make a ledger record of {len(value)} bytes,"
                    f" more than the {limit} the bridge writes",
                )
                refused = Refused(
                    index=run.index,
                    run_id=run.run_id,
                    suggestion_id=run.suggestion_id or "",
                    given=dict(run.given),
                    error=error,
                    iteration=run.iteration,
                    metadata=run.metadata,
                    warnings=run.warnings,
                )
                admission.answers.append((refused, print_))
                admission.dead_letter = admission.dead_letter or error
                continue
            item = RunItem(run=run, operation=operation, source=part, record=ledger_record, offset=record.offset)
            prepared.append((item, value))
        return prepared

    def _answer(
        self, part: Partition, record: ConsumedRecord, accepted: Accepted, refused: Refused, print_: str
    ) -> None:
        """A refused suggestion's failed result and its `finished` ledger record, queued with no await between
        them: they commit together, and with the offset of the record that caused them."""
        limit = self._settings.limits.max_record_bytes
        result = fit_result(refusal_result(refused, accepted.study, accepted.template, limit), limit)
        finished = refusal_record(refused, result, accepted.study, accepted.template, print_).to_bytes()
        self._index.note(part.partition, refused.run_id, "finished", fingerprint=print_, record=finished)
        log.info(
            "suggestion_refused",
            study=accepted.study,
            run_id=refused.run_id,
            type=refused.error.type,
            field=(refused.error.field or "")[:200],
        )
        self._telemetry.suggestion_received(accepted.template, "refused")
        topics = self._settings.topics
        self._publishers.publish(
            part, Outgoing(topics.results, accepted.study.encode(), result.to_json().encode(), completes=record.offset)
        )
        self._publishers.publish(
            part, Outgoing(topics.ledger, refused.run_id.encode(), finished, partition=part.partition)
        )

    def _register(
        self, part: Partition, record: ConsumedRecord, study: str, template: str, prepared: list[tuple[RunItem, bytes]]
    ) -> None:
        self._telemetry.suggestion_received(template, "accepted", len(prepared))
        ledger = self._settings.topics.ledger
        items = []
        for item, value in prepared:
            self._registry.add(item)
            # `received`, with everything needed to run it again, commits with the consumed offset.
            out = Outgoing(ledger, item.run.run_id.encode(), value, completes=record.offset, partition=part.partition)
            self._publishers.publish(part, out)
            if self._early is not None:
                self._early.received(item, queued=out)  # granted now, the grant takes the record's place
            items.append(item)
        self._index.note_many(part.partition, [(i.run.run_id, i.record.fingerprint) for i in items], "active")
        self._batch(part, study, template, items)

    def _refuse(self, part: Partition, record: ConsumedRecord, error: DeadLetterError) -> None:
        self._tracker.add(part, record.offset, 1)
        self._dead_letters.of_record(part, record, error)
