"""A param the template does not declare is not refused (Polyaxon passes it on as a context param), but the run
then uses the declared input's default: every answer to that suggestion says so in `warnings`, with the closest
declared name (issue 19, item 2), whatever the answer is: its result, a replay of it, a cache hit, a refusal for
another reason. With strictParams it is refused, and the refusal names the closest declared name too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.messages import LedgerRecord
from bridge.kafka.memory import MemoryBroker
from bridge.service.intake import Accepted, Templates, accept, accept_ledger_record
from bridge.service.runs import received_record
from tests.engine_support import job_component
from tests.service.memory_support import RESULT, FakeExecutor, memory_settings, messages, serving, until
from tests.service.service_support import suggestion

SLEP = (
    "params.slep: the template `job` declares no `slep`; the run gets it as a context param only; did you mean `sleep`?"
)


def _answers(broker: MemoryBroker, topic: str) -> dict[tuple[str, bool, bool], dict[str, Any]]:
    """Each result by (suggestion id, replayed, cached)."""
    return {(m["suggestion_id"], m["replayed"], m["cached"]): m for m in messages(broker, topic, RESULT)}


async def test_every_answer_to_a_misspelt_param_carries_the_warning_and_others_carry_none(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, topics = MemoryBroker(settings), settings.topics
    misspelt = suggestion("s", [{"name": "a", "slep": 2}, {"name": "b"}], ids=["typo", "clean"])
    async with serving(settings, broker, FakeExecutor()):
        broker.send(topics.suggestions, misspelt, key=b"s")
        await until(broker, topics.results, 2, RESULT)
        broker.send(topics.suggestions, misspelt, key=b"s")  # sent again: answered with copies
        # the same params under a new id: the cache answers; and a refusal for another reason
        later = [{"name": "a", "slep": 2}, {"name": "c", "slep": 1, "exitcode": "no"}]
        broker.send(topics.suggestions, suggestion("s", later, ids=["again", "bad"]), key=b"s")
        await until(broker, topics.results, 6, RESULT)
    answers = _answers(broker, topics.results)
    assert answers[("typo", False, False)]["warnings"] == [SLEP]
    assert answers[("typo", True, False)]["warnings"] == [SLEP]  # the replay, as the original
    assert answers[("again", False, True)]["warnings"] == [SLEP]
    refused = answers[("bad", False, False)]
    assert (refused["status"], refused["error"]["field"]) == ("failed", "suggestions[1].params.exitcode")
    assert refused["warnings"] == [SLEP]
    # A result without a warning is what readers of the first v1 read: no `warnings` key at all.
    assert "warnings" not in answers[("clean", False, False)]
    assert "warnings" not in answers[("clean", True, False)]


async def test_with_strict_params_the_misspelt_param_is_refused_naming_the_declared_one(tmp_path: Path) -> None:
    template = {"component": job_component(), "matrix": {"kind": "mapping"}, "params": {"record": {"value": "r"}}}
    settings = memory_settings(tmp_path, templates={"job": {**template, "strictParams": True}})
    broker, topics = MemoryBroker(settings), settings.topics
    async with serving(settings, broker, FakeExecutor()):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a", "slep": 2}], ids=["typo"]), key=b"s")
        (answer,) = await until(broker, topics.results, 1, RESULT)
    assert (answer["status"], answer["error"]["type"]) == ("failed", "invalid_params")
    assert answer["error"]["field"] == "suggestions[0].params.slep"
    assert "did you mean `sleep`?" in answer["error"]["message"]
    assert "warnings" not in answer  # refused for it: not warned of it as well


def test_a_run_taken_again_from_the_ledger_keeps_its_warnings(tmp_path: Path) -> None:
    """Another replica runs an unfinished run from its `received` record: its result warns in the same words."""
    settings = memory_settings(tmp_path)
    templates = Templates(settings)
    raw = suggestion("s", [{"name": "a", "slep": 2}], ids=["typo"], params={"epocs": 3})
    accepted = accept(raw, templates, settings)
    assert isinstance(accepted, Accepted)
    (run,) = accepted.runs
    epocs = "params.epocs: the template `job` declares no `epocs`; the run gets it as a context param only"
    assert list(run.warnings) == [epocs, SLEP]
    record = received_record(run, "s", "job", None, "fingerprint")
    again = accept_ledger_record(LedgerRecord.model_validate_json(record.to_bytes()), templates, settings)
    assert not isinstance(again, DeadLetterError)
    _, rerun = again
    assert set(rerun.warnings) == set(run.warnings)
