"""`answers()` for several submissions asked in turn, on the real broker with a running bridge: each gets its
own answers, whichever wait read them (issue: the first wait dropped the other submissions' refusals and dead
letters, so a refused suggestion was reported `accepted`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.contract.messages import SuggestionMessage
from tests.service.service_support import running, service_settings

pytestmark = pytest.mark.kafka


def _message(params: dict[str, object], sid: str) -> SuggestionMessage:
    return SuggestionMessage.model_validate(
        {"study": "s", "template": "job", "suggestions": [{"id": sid, "params": params}]}
    )


async def test_a_refusal_is_reported_whichever_submission_is_asked_first(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    deep: object = "x"
    for _ in range(settings.limits.max_depth):
        deep = [deep]
    async with running(settings), BridgeClient(kafka=settings.kafka, topics=settings.topics) as client:
        # One study, so one partition: the bridge handles them in this order, and by the time it commits the
        # last one, the refusals of the first two are on the topics.
        whole = await client.submit_message(_message({"name": deep}, "too-deep"))  # a dead letter alone
        one = await client.submit_message(_message({"name": "bad", "sleep": "abc"}, "bad"))  # a refusal answer
        fine = await client.submit_message(_message({"name": "ok"}, "ok"))
        answered_fine = await client.answers(fine, timeout=30)
        answered_one = await client.answers(one, timeout=30)
        answered_whole = await client.answers(whole, timeout=30)

    assert answered_fine["ok"].state in ("accepted", "succeeded")
    bad = answered_one["bad"]
    assert bad.state == "refused"
    assert bad.reason is not None and (bad.reason.type, bad.reason.field) == (
        "invalid_params",
        "suggestions[0].params.sleep",
    )
    too_deep = answered_whole["too-deep"]
    assert too_deep.state == "refused", too_deep
    assert too_deep.reason is not None and too_deep.result is None  # the record's own dead letter said so
