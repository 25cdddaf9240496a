"""The control topic: stop a run or an operation from outside, when the message is entitled to.

A stop names its study, which must be the stopped run's or operation's; with `control.token` set, a message
without it is refused. Refusals are dead letters; a target that is not running here is only logged (another
replica may own it, and it reads the same message).
"""

from __future__ import annotations

import hmac

import structlog

from bridge.config.sections import ControlSettings
from bridge.contract.codec import parse_control
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.limits import Limits
from bridge.contract.messages import ControlMessage, MessageError
from bridge.kafka.base import ConsumedRecord
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.refusals import DeadLetters
from bridge.service.registry import RunRegistry

log = structlog.get_logger(__name__)


def _study_mismatch(what: str, target: str) -> DeadLetterError:
    return DeadLetterError(
        type="control_refused", field="study", message=f"{what} {target} is not of the study this message names"
    )


class Control:
    """Carries out, or refuses, one control record."""

    def __init__(
        self,
        settings: ControlSettings,
        limits: Limits,
        registry: RunRegistry,
        tracker: OffsetTracker,
        dead_letters: DeadLetters,
    ) -> None:
        self._token = settings.token
        self._limits = limits
        self._registry = registry
        self._tracker = tracker
        self._dead_letters = dead_letters

    def handle(self, part: Partition, record: ConsumedRecord) -> None:
        """Act on one record of the control topic; its offset completes at once, or with its dead letter."""
        try:
            msg = parse_control(record.value or b"", limits=self._limits)
        except MessageError as exc:
            self._refuse(part, record, DeadLetterError.from_exception(exc))
            return
        refusal = self._refusal(msg)
        if refusal is not None:
            self._refuse(part, record, refusal)
            return
        self._tracker.add(part, record.offset, 0)

    def _refusal(self, msg: ControlMessage) -> DeadLetterError | None:
        """Carry the message out, or say why it is refused."""
        if self._token is not None and not hmac.compare_digest(
            (msg.token or "").encode("utf-8", "surrogatepass"), self._token.get_secret_value().encode()
        ):
            return DeadLetterError(type="control_unauthorized", field="token", message="missing or wrong token")
        reason = msg.reason or f"{msg.action} requested"
        if msg.action == "stop_operation" and msg.operation_id is not None:
            runner = self._registry.runner(msg.operation_id)
            if runner is not None and runner.plan.study != msg.study:
                return _study_mismatch("operation", msg.operation_id)
            if runner is not None:
                runner.stop(reason)
            log.info("control_stop_operation", operation_id=msg.operation_id, found=runner is not None)
            return None
        run_id = msg.run_id or self._registry.run_of_suggestion(msg.study, msg.suggestion_id or "")
        item = self._registry.get(run_id or "")
        owner = self._registry.owner(run_id or "")
        if item is not None and item.study != msg.study:
            return _study_mismatch("run", run_id or "")
        if owner is not None and run_id is not None:
            owner.stop_run(run_id, reason)
        log.info("control_stop_run", run_id=run_id, found=owner is not None)
        return None

    def _refuse(self, part: Partition, record: ConsumedRecord, error: DeadLetterError) -> None:
        self._tracker.add(part, record.offset, 1)
        self._dead_letters.of_record(part, record, error)
