"""`bridge submit` without the bridge's config learns a template's declared inputs from the operation the bridge
built (its `created` event), for an answer with no result yet: the warnings it words from it are the very
sentences the bridge's results carry, and each is printed once, whether the answer carried it too or not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.cli.submit import print_warnings
from bridge.client.answer_book import Answer
from bridge.contract.decoders import Decoded, read_operation
from bridge.contract.identity import fingerprint
from bridge.contract.messages import OperationCreated, SuggestionMessage
from bridge.contract.results import RunResult, RunStatus
from bridge.kafka.offsets import Partition
from bridge.local.hints import answer_warnings
from bridge.service.intake import Accepted, Templates, accept
from bridge.service.operations import _operation_document
from bridge.service.runs import RunItem, received_record
from tests.service.memory_support import memory_settings
from tests.service.service_support import suggestion

SAID = (
    "params.slep: the template `job` declares no `slep`; the run gets it as a context param only; did you mean `sleep`?"
)


def test_the_warnings_learned_from_the_built_operation_are_the_results(tmp_path: Path) -> None:
    """From the `created` event as the service builds and publishes it, the same sentences, by suggestion id, as
    the service's intake gives each run's result (shared params and a suggestion's own, one without any)."""
    settings = memory_settings(tmp_path)
    raw = suggestion("s", [{"name": "a", "fail_befor": 1}, {"name": "b"}], ids=["t-1", "t-2"], params={"slep": 0.5})
    accepted = accept(raw, Templates(settings), settings)
    assert isinstance(accepted, Accepted) and accepted.operation is not None
    source = Partition("suggestions", 0)
    items = [
        RunItem(run, accepted.operation, source, received_record(run, "s", "job", None, fingerprint(run.given)))
        for run in accepted.runs
    ]
    event = OperationCreated(
        study="s", template="job", operation_id="op", at=datetime.now(UTC), operation=_operation_document(items)
    )
    read = read_operation(event.to_json().encode())  # as the client reads it off the operations topic
    assert isinstance(read, Decoded) and isinstance(read.message, OperationCreated)
    message = SuggestionMessage.model_validate(json.loads(raw))

    learned = answer_warnings(read.message.operation, message)

    assert learned == {run.suggestion_id: list(run.warnings) for run in accepted.runs}
    assert learned["t-1"][0] == SAID
    assert learned["t-1"][1].startswith("params.fail_befor: the template `job` declares no `fail_befor`")
    assert learned["t-2"] == [SAID]


def test_an_operation_this_bridge_cannot_read_teaches_nothing() -> None:
    message = SuggestionMessage.model_validate({"study": "s", "template": "job", "suggestions": [{"params": {}}]})
    assert answer_warnings({"kind": "operation", "no such field": 1}, message) == {}


def _answer(sid: str, state: str, warnings: list[str]) -> Answer:
    result = None
    if warnings:
        result = RunResult.model_validate(
            {
                "study": "s",
                "template": "job",
                "operation_id": "op",
                "run_id": f"run-{sid}",
                "suggestion_id": sid,
                "index": 0,
                "params": {},
                "status": RunStatus.SUCCEEDED,
                "warnings": warnings,
            }
        )
    return Answer(sid, f"run-{sid}", state, result)  # type: ignore[arg-type]


def test_each_warning_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A result's warnings and those learned from the operation are the same sentences: printed once; an
    accepted answer (no result) gets the learned ones; those printed before sending (-c) are not repeated."""
    other = "params.x: the template `job` declares no `x`; the run gets it as a context param only"
    answers = [
        _answer("t-1", "succeeded", [SAID]),
        _answer("t-2", "accepted", []),
        _answer("t-3", "accepted", []),
        _answer("t-4", "accepted", []),
    ]
    learned = {"t-1": [SAID], "t-2": [SAID, other, SAID], "t-4": [SAID]}

    print_warnings(answers, already={"t-4": {SAID}}, learned=learned)

    assert capsys.readouterr().err.splitlines() == [
        f"warning: suggestion t-1: {SAID}",
        f"warning: suggestion t-2: {SAID}",
        f"warning: suggestion t-2: {other}",
    ]
