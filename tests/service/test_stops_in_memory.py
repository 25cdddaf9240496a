"""Every stop gets an answer from the replica that owns its study's runs: stopped (running, queued or still
batched), already finished (a replayed copy of its result), or not known (a dead letter that says so); a stop's
offset commits only with the stopped result, and a refused stop's token never reaches the dead-letter topic."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from bridge.kafka.memory import MemoryBroker
from tests.polling import eventually
from tests.service.memory_support import (
    RESULT,
    FakeExecutor,
    committed,
    memory_settings,
    messages,
    one_held_run,
    serving,
    until,
)
from tests.service.service_support import suggestion


def _stop(study: str, **target: Any) -> bytes:
    return json.dumps({"schema": "bridge.control/v1", "action": "stop_run", "study": study, **target}).encode()


async def test_a_running_run_is_stopped_and_the_stop_commits_with_its_result(tmp_path: Path) -> None:
    async with one_held_run(tmp_path) as (settings, broker, _executor, service):
        topics = settings.topics
        broker.send(topics.control, _stop("s", suggestion_id="a1", reason="enough"), key=b"s")
        (result,) = await until(broker, topics.results, 1, RESULT)
        await eventually(lambda: committed(broker, topics.control) == 1, timeout=5, interval=0.005)
        assert service.in_flight == 0
    assert (result["suggestion_id"], result["status"], result["error"]["type"]) == ("a1", "stopped", "stopped")
    assert result["error"]["message"] == "enough"


async def test_a_stop_waits_for_its_runs_result_before_its_offset_commits(tmp_path: Path) -> None:
    async with one_held_run(tmp_path) as (settings, broker, executor, service):
        topics = settings.topics
        # The run ignores the stop for a while (its handle ends only when released): the stop is not done yet.
        handle = next(iter(executor.running))
        handle.stop = _ignore  # type: ignore[method-assign]
        broker.send(topics.control, _stop("s", suggestion_id="a1"), key=b"s")
        other = suggestion("s", [{"name": "b"}], ids=["b1"])
        broker.send(topics.suggestions, other, key=b"s")  # handled after the stop: the loop went on
        await eventually(lambda: len(executor.started) == 2, timeout=5, interval=0.005)
        assert committed(broker, topics.control) == 0
        executor.release()
        await until(broker, topics.results, 2, RESULT)
        await eventually(lambda: committed(broker, topics.control) == 1, timeout=5, interval=0.005)
        assert service.in_flight == 0


async def _ignore(grace_s: float) -> None:
    return None


async def test_a_run_still_being_batched_is_stopped_before_it_starts(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, batching={"linger_ms": 60_000, "max_configs": 64})
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor) as service:
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}, {"name": "b"}], ids=["a1", "b1"]), key=b"s")
        await eventually(lambda: service.in_flight == 2, timeout=5, interval=0.005)
        broker.send(topics.control, _stop("s", suggestion_id="a1"), key=b"s")
        (result,) = await until(broker, topics.results, 1, RESULT)
        await eventually(lambda: committed(broker, topics.control) == 1, timeout=5, interval=0.005)
    assert (result["suggestion_id"], result["status"], result["attempt"]) == ("a1", "stopped", 0)
    assert "a" not in executor.names  # it never ran; its batch mate ran when the bridge drained
    assert executor.names == ["b"]


async def test_a_stop_of_a_finished_run_is_answered_with_a_copy_of_its_result(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, batching={"linger_ms": 0})
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        (first,) = await until(broker, topics.results, 1, RESULT)
        broker.send(topics.control, _stop("s", suggestion_id="a1"), key=b"s")
        results = await until(broker, topics.results, 2, RESULT)
        await eventually(lambda: committed(broker, topics.control) == 1, timeout=5, interval=0.005)
    copy = results[1]
    assert copy["replayed"] is True
    assert (copy["run_id"], copy["status"], copy["outputs"]) == (first["run_id"], "succeeded", {"loss": 0.5})
    assert messages(broker, topics.dead_letters) == []


async def test_a_stop_of_something_not_known_gets_a_dead_letter_that_says_so(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.control, _stop("s", suggestion_id="never-sent"), key=b"s")
        broker.send(
            topics.control,
            json.dumps(
                {"schema": "bridge.control/v1", "action": "stop_operation", "study": "s", "operation_id": "x"}
            ).encode(),
            key=b"s",
        )
        await eventually(lambda: len(messages(broker, topics.dead_letters)) == 2, timeout=5, interval=0.005)
        await eventually(lambda: committed(broker, topics.control) == 2, timeout=5, interval=0.005)
    letters = messages(broker, topics.dead_letters)
    assert [m["error"]["type"] for m in letters] == ["control_target_unknown"] * 2
    assert "suggestion never-sent of study s" in letters[0]["error"]["message"]
    assert "operation x" in letters[1]["error"]["message"]
    assert messages(broker, topics.results, RESULT) == []


async def test_a_refused_stop_does_not_copy_its_token_into_the_dead_letter_topic(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, control={"token": "s3cret-token"})
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        # The right token, for a run of another study: refused, and the token it carries must not leak.
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        await until(broker, topics.results, 1, RESULT)
        run_id = messages(broker, topics.results, RESULT)[0]["run_id"]
        wrong = json.dumps(
            {"schema": "bridge.control/v1", "action": "stop_run", "study": "s", "suggestion_id": "a1", "token": "no"}
        )
        broker.send(topics.control, wrong.encode(), key=b"s")
        await eventually(lambda: len(messages(broker, topics.dead_letters)) == 1, timeout=5, interval=0.005)
        broker.send(topics.control, _stop("other", run_id=run_id, token="s3cret-token"), key=b"s")
        await eventually(lambda: len(messages(broker, topics.dead_letters)) == 2, timeout=5, interval=0.005)
    raw = [json.dumps(m) for m in messages(broker, topics.dead_letters)]
    assert all("s3cret-token" not in r for r in raw)
    values = [base64.b64decode(m["value"]).decode() for m in messages(broker, topics.dead_letters)]
    assert all("s3cret-token" not in v and "<redacted>" in v for v in values)
