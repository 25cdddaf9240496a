"""What a client makes of the answers to one submission (bridge/client/answer_book.py): each suggestion id its
first answer, refusals with their reason, and once the message is handled, `accepted` for the rest, or `refused`
for all when the record itself was dead-lettered with no answer."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.client.answer_book import AnswerBook, Submission
from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.contract.results import NO_OPERATION, RunError, RunResult, RunStatus

SENT = Submission(study="s", template="job", suggestion_ids=["a", "b"], topic="sugg", partition=1, offset=7)


def _result(sid: str, **fields: object) -> RunResult:
    base: dict[str, object] = {
        "study": "s",
        "template": "job",
        "operation_id": "op",
        "run_id": SENT.run_id(sid),
        "suggestion_id": sid,
        "index": 0,
        "params": {},
        "status": RunStatus.SUCCEEDED,
    }
    return RunResult.model_validate({**base, **fields})


def _letter(offset: int) -> DeadLetter:
    error = DeadLetterError(type="record_too_large", message="too big", field="suggestions[0]")
    return DeadLetter.of_record(
        topic="sugg",
        partition=1,
        offset=offset,
        key=b"s",
        value=b"{}",
        timestamp_ms=None,
        error=error,
        at=datetime.now(UTC),
    )


def test_each_id_gets_its_first_answer_and_a_refusal_its_reason() -> None:
    book = AnswerBook(SENT)
    refusal = RunError(type="invalid_params", message="bad", field="suggestions[1].params.x")
    book.take_result(_result("a", cached=True))
    book.take_result(_result("a"))  # a later one for the same id: the first answer stands
    book.take_result(_result("b", operation_id=NO_OPERATION, status=RunStatus.FAILED, run_id="own", error=refusal))
    book.take_result(_result("c"))  # not of this submission
    answers = book.answers()
    assert book.complete
    assert [(a.suggestion_id, a.state) for a in answers.values()] == [("a", "cached"), ("b", "refused")]
    reason = answers["b"].reason
    assert reason is not None and (reason.type, reason.field) == ("invalid_params", "suggestions[1].params.x")
    assert answers["b"].run_id == "own"


def test_a_result_of_another_run_with_the_same_id_is_not_an_answer() -> None:
    book = AnswerBook(SENT)
    book.take_result(_result("a", run_id="another-templates-run"))
    assert book.answers()["a"].state == "pending"


def test_once_handled_the_unanswered_are_accepted_or_all_refused_with_the_record() -> None:
    handled = AnswerBook(SENT)
    handled.take_result(_result("a", replayed=True))
    handled.settle()
    assert [a.state for a in handled.answers().values()] == ["replayed", "accepted"]

    dead = AnswerBook(SENT)
    assert not dead.take_letter(_letter(offset=8))  # another record's
    assert dead.take_letter(_letter(offset=7))
    dead.settle()
    answers = dead.answers()
    assert [a.state for a in answers.values()] == ["refused", "refused"]
    assert all(a.reason is not None and a.reason.type == "record_too_large" for a in answers.values())
