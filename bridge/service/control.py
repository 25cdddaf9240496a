"""The control topic: stop a run or an operation from outside, when the message is entitled to.

Control partition N belongs to the replica that owns suggestions partition N (`kafka.broker`: the topics have as
many partitions and a range assignor), and a stop is keyed by its study like the study's suggestions: the replica
that reads a stop is the one that has its runs, their ledger and their results. It answers every stop:
- a run in flight here (running, queued, or still being batched) is stopped; the stop's offset commits only
  once that run's `stopped` result is committed, so a stop outlives a crash of its replica (the next owner reads
  it again and stops the run it takes over);
- a run that finished before is answered with a copy of its final result, `replayed`;
- anything else (not known here: never sent, not read yet, or of a template this bridge does not serve) gets a
  dead letter of type `control_target_unknown` that says so.
A stop must name the study of what it stops; with `control.token` set, a message without it is refused. Refusals
are dead letters, with the token written over: a dead letter is for whoever reads the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog

from bridge.config.sections import ControlSettings
from bridge.contract.codec import parse_control
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.identity import run_id_of
from bridge.contract.limits import Limits
from bridge.contract.messages import ControlMessage, MessageError
from bridge.contract.results import RunResult
from bridge.kafka.base import ConsumedRecord, Outgoing
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.ledger.index import LedgerIndex
from bridge.service.ledger.records import finished_result
from bridge.service.publishing import Publishers
from bridge.service.refusals import DeadLetters
from bridge.service.registry import RunRegistry

log = structlog.get_logger(__name__)

REDACTED = "<redacted>"


def _study_mismatch(what: str, target: str) -> DeadLetterError:
    return DeadLetterError(
        type="control_refused", field="study", message=f"{what} {target} is not of the study this message names"
    )


def _unknown(what: str) -> DeadLetterError:
    return DeadLetterError(
        type="control_target_unknown",
        message=f"{what} is not running on the replica that owns its study's partition, and no final result of it"
        " is known there: never sent, not read yet, or of a template this bridge does not serve",
    )


@dataclass(frozen=True)
class _Copy:
    """A consumed record with its value replaced (a `ConsumedRecord`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Sequence[tuple[str, bytes]] | None


def redacted(record: ConsumedRecord) -> ConsumedRecord:
    """`record` with the `token` of its JSON object written over, if it carries one."""
    try:
        body = json.loads(record.value or b"")
    except (ValueError, RecursionError):
        return record
    if not isinstance(body, dict) or "token" not in body:
        return record
    value = json.dumps({**body, "token": REDACTED}).encode()
    return _Copy(record.topic, record.partition, record.offset, record.key, value, record.timestamp, record.headers)


class Control:
    """Carries out, answers or refuses one control record."""

    def __init__(
        self,
        settings: ControlSettings,
        limits: Limits,
        *,
        results_topic: str,
        registry: RunRegistry,
        index: LedgerIndex,
        templates: Callable[[], Iterable[str]],
        stop_batched: Callable[[str, str], bool],
        tracker: OffsetTracker,
        publishers: Publishers,
        dead_letters: DeadLetters,
    ) -> None:
        self._token = settings.token
        self._limits = limits
        self._results = results_topic
        self._registry = registry
        self._index = index
        self._templates = templates
        self._stop_batched = stop_batched
        self._tracker = tracker
        self._publishers = publishers
        self._dead_letters = dead_letters
        # Stops waiting for the result of what they stopped: run id -> the control records (partition, offset).
        self._awaiting: dict[str, list[tuple[Partition, int]]] = {}

    def handle(self, part: Partition, record: ConsumedRecord, *, local: bool = True) -> None:
        """Act on one record of the control topic: its offset completes at once, with its answer, or with the
        results of the runs it stopped. Not `local`: this replica does not own the suggestions partition of the
        same number (the range assignor gives both to one replica; only a group that assigns another way, which
        `kafka.broker` refuses, would split them): it stops what it has, if anything, and answers nothing, for
        another replica may have the run."""
        try:
            msg = parse_control(record.value or b"", limits=self._limits)
        except MessageError as exc:
            self._refuse(part, record, DeadLetterError.from_exception(exc))
            return
        if self._token is not None and not hmac.compare_digest(
            (msg.token or "").encode("utf-8", "surrogatepass"), self._token.get_secret_value().encode()
        ):
            self._refuse(
                part,
                record,
                DeadLetterError(type="control_unauthorized", field="token", message="missing or wrong token"),
            )
            return
        reason = msg.reason or f"{msg.action} requested"
        if not local:
            self._tracker.add(part, record.offset, 0)
            self._stop_here(msg, reason)
            return
        if msg.action == "stop_operation":
            self._stop_operation(part, record, msg, reason)
        else:
            self._stop_run(part, record, msg, reason)

    def _stop_operation(self, part: Partition, record: ConsumedRecord, msg: ControlMessage, reason: str) -> None:
        operation_id = msg.operation_id or ""
        runner = self._registry.runner(operation_id)
        if runner is None:
            self._refuse(part, record, _unknown(f"operation {operation_id}"))
            return
        if runner.plan.study != msg.study:
            self._refuse(part, record, _study_mismatch("operation", operation_id))
            return
        in_flight = [r.run_id for r in runner.plan.runs if self._registry.get(r.run_id) is not None]
        self._await(part, record.offset, in_flight)
        runner.stop(reason)
        log.info("control_stop_operation", operation_id=operation_id, runs=len(in_flight))

    def _stop_run(self, part: Partition, record: ConsumedRecord, msg: ControlMessage, reason: str) -> None:
        run_id = msg.run_id or self._registry.run_of_suggestion(msg.study, msg.suggestion_id or "")
        item = self._registry.get(run_id or "")
        target = f"run {msg.run_id}" if msg.run_id else f"suggestion {msg.suggestion_id} of study {msg.study}"
        if item is not None and run_id is not None:
            if item.study != msg.study:
                self._refuse(part, record, _study_mismatch("run", run_id))
                return
            self._await(part, record.offset, [run_id])  # first: a batched run's result leaves within the stop
            owner = self._registry.owner(run_id)
            stopped = owner.stop_run(run_id, reason) if owner is not None else self._stop_batched(run_id, reason)
            log.info("control_stop_run", run_id=run_id, batched=owner is None, stopped=stopped)
            if not stopped:  # in flight, yet neither batched nor in an operation: between the two, never seen
                self._awaiting.pop(run_id, None)
                self._tracker.done(part, record.offset)
            return
        finished = self._finished(msg)
        if finished is None:
            self._refuse(part, record, _unknown(target))
            return
        # Already answered: a copy of its final result, in the transaction that commits this record's offset.
        self._tracker.add(part, record.offset, 1)
        copy = finished.model_copy(update={"replayed": True})
        out = Outgoing(self._results, msg.study.encode(), copy.to_json().encode(), completes=record.offset)
        self._publishers.publish(part, out)
        log.info("control_stop_already_finished", run_id=finished.run_id, status=finished.status.value)

    def _stop_here(self, msg: ControlMessage, reason: str) -> None:
        """Stop what of `msg` runs here, without waiting for it or answering (not co-partitioned)."""
        if msg.action == "stop_operation":
            runner = self._registry.runner(msg.operation_id or "")
            if runner is not None and runner.plan.study == msg.study:
                runner.stop(reason)
            return
        run_id = msg.run_id or self._registry.run_of_suggestion(msg.study, msg.suggestion_id or "")
        item = self._registry.get(run_id or "")
        owner = self._registry.owner(run_id or "")
        if item is not None and item.study == msg.study and owner is not None and run_id is not None:
            owner.stop_run(run_id, reason)
        log.warning("control_partition_without_its_runs", study=msg.study, found=owner is not None)

    def _finished(self, msg: ControlMessage) -> RunResult | None:
        """The final result of the run `msg` names, if the ledger says it finished (and it is of the study)."""
        if msg.run_id is not None:
            candidates = [msg.run_id]
        else:
            candidates = [run_id_of(msg.study, t, msg.suggestion_id or "") for t in self._templates()]
        for run_id in candidates:
            known = self._index.get(run_id)
            record = known.finished_record if known is not None else None
            if record is None:
                continue
            result = finished_result(record)
            if result is not None and result.study == msg.study:
                return result
        return None

    def _await(self, part: Partition, offset: int, run_ids: Sequence[str]) -> None:
        """The record at `offset` completes when each of `run_ids` has its final result committed."""
        self._tracker.add(part, offset, len(run_ids))
        for run_id in run_ids:
            self._awaiting.setdefault(run_id, []).append((part, offset))

    def result_published(self, run_id: str, committed: asyncio.Future[None] | None) -> None:
        """A run's final result left in a transaction (`committed`, None: it was not queued): the stops that wait
        for it complete once that transaction commits."""
        waiting = self._awaiting.pop(run_id, None)
        if not waiting or committed is None:
            return

        def done(future: asyncio.Future[None]) -> None:
            if future.cancelled() or future.exception() is not None:
                return  # not committed: the partition moves, and its next owner reads the stop again
            for part, offset in waiting:
                self._tracker.done(part, offset)
                self._publishers.complete(part)

        committed.add_done_callback(done)

    def forget(self, parts: set[Partition]) -> None:
        """These control partitions left: their stops are read again by their next owner."""
        for run_id in list(self._awaiting):
            kept = [(p, o) for p, o in self._awaiting[run_id] if p not in parts]
            if kept:
                self._awaiting[run_id] = kept
            else:
                del self._awaiting[run_id]

    def _refuse(self, part: Partition, record: ConsumedRecord, error: DeadLetterError) -> None:
        self._tracker.add(part, record.offset, 1)
        self._dead_letters.of_record(part, redacted(record), error)
