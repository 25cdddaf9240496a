"""What became of each suggestion a client submitted, from the results and dead letters it reads back.

Each suggestion id gets one `Answer`, the first that comes for it:
- a result under its run id: `succeeded`, `failed`, `stopped` or `skipped`, or `cached` / `replayed` for an
  answer the bridge did not run for (a cache hit, a copy of a result published before);
- a result with no operation (`bridge.service.answers`): `refused`, with the reason (type, message, field) the bridge
  gave, e.g. `invalid_params` or `conflicting_suggestion`, under a run id of its own for a conflict;
- the dead letter of the submitted record itself (matched by topic, partition and offset) that came with no
  answer at all, once the results committed with it are read: `refused` for each id (the whole message was);
- the bridge committed the submitted record's offset (so what it caused is durable) and no answer came with it:
  `accepted` (its run is on its way; its result comes later);
- nothing known yet: `pending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.contract.identity import run_id_of
from bridge.contract.results import NO_OPERATION, RunResult, RunStatus

AnswerState = Literal[
    "succeeded", "failed", "stopped", "skipped", "cached", "replayed", "refused", "accepted", "pending"
]


@dataclass(frozen=True)
class Submission:
    """One suggestion message as sent: where it landed, and the ids of its suggestions."""

    study: str
    template: str
    suggestion_ids: list[str]
    topic: str
    partition: int
    offset: int

    def run_id(self, suggestion_id: str) -> str:
        """The run id the bridge gives a suggestion it runs."""
        return run_id_of(self.study, self.template, suggestion_id)


@dataclass(frozen=True)
class Answer:
    """What became of one submitted suggestion."""

    suggestion_id: str
    run_id: str  # the run id of its answer (a conflict's own), or the one it runs under while pending
    state: AnswerState
    result: RunResult | None = None
    reason: DeadLetterError | None = None  # why it was refused

    @property
    def refused(self) -> bool:
        """The bridge will not run it."""
        return self.state == "refused"

    @property
    def warnings(self) -> list[str]:
        """What the bridge noticed about the suggestion without refusing it (a param its template does not
        declare, with the closest declared name), as its result says; none before its result came."""
        return list(self.result.warnings) if self.result is not None else []


def state_of(result: RunResult) -> AnswerState:
    """The state a result tells of its suggestion."""
    if result.operation_id == NO_OPERATION and result.status == RunStatus.FAILED:
        return "refused"
    if result.replayed:
        return "replayed"
    if result.cached:
        return "cached"
    return result.status.value


class AnswerBook:
    """The answers to one submission, as results and dead letters come in."""

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self._answers: dict[str, Answer] = {}
        self.letter: DeadLetter | None = None

    @property
    def complete(self) -> bool:
        """Every suggestion id has its answer."""
        return len(self._answers) == len(set(self.submission.suggestion_ids))

    def take_result(self, result: RunResult) -> None:
        """Note a result if it answers one of the submission's suggestions (the first answer of each wins)."""
        sid = result.suggestion_id
        if result.study != self.submission.study or sid not in self.submission.suggestion_ids or sid in self._answers:
            return
        state = state_of(result)
        if state != "refused" and result.run_id != self.submission.run_id(sid):
            return  # another run of that suggestion id (another template's)
        reason = None
        if state == "refused" and result.error is not None:
            reason = DeadLetterError(type=result.error.type, message=result.error.message, field=result.error.field)
        self._answers[sid] = Answer(sid, result.run_id, state, result, reason)

    def take_letter(self, letter: DeadLetter) -> bool:
        """Note the dead letter of the submitted record; whether it was that one."""
        s = self.submission
        if (letter.topic, letter.partition, letter.offset) != (s.topic, s.partition, s.offset):
            return False
        self.letter = letter
        return True

    def settle(self) -> None:
        """The submitted record is handled and what committed with it is read: each id still unanswered was
        accepted, unless the record was dead-lettered with no answer at all (refused as a whole, each id with
        the record's reason). A readable message's dead letter comes with the answers of what it refused."""
        whole = self.letter is not None and not self._answers
        for sid in self.submission.suggestion_ids:
            if sid not in self._answers:
                run_id = self.submission.run_id(sid)
                if whole and self.letter is not None:
                    self._answers[sid] = Answer(sid, run_id, "refused", reason=self.letter.error)
                else:
                    self._answers[sid] = Answer(sid, run_id, "accepted")

    def answers(self) -> dict[str, Answer]:
        """Each suggestion id's answer, `pending` for those without one yet, in the submitted order."""
        return {
            sid: self._answers.get(sid) or Answer(sid, self.submission.run_id(sid), "pending")
            for sid in self.submission.suggestion_ids
        }
