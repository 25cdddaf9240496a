"""The service's behaviour on the in-memory broker: intake, offsets, batching, replays, conflicts and rebalances,
each in milliseconds. The same guarantees on the real broker: tests/service, tests/faults, tests/brokers."""

from __future__ import annotations

from pathlib import Path

from bridge.kafka.memory import MemoryBroker
from tests.polling import eventually
from tests.service.memory_support import (
    LEDGER,
    RESULT,
    FakeExecutor,
    committed,
    memory_settings,
    messages,
    serving,
    until,
)
from tests.service.service_support import suggestion


async def test_a_suggestion_gets_one_result_and_its_offset_is_committed_with_it(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        results = await until(broker, topics.results, 1, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 1, timeout=5, interval=0.005)
    assert [(r["suggestion_id"], r["status"], r["outputs"]) for r in results] == [("a1", "succeeded", {"loss": 0.5})]
    states = [(m["state"], m["attempt"]) for m in messages(broker, topics.ledger, LEDGER)]
    assert states[0][1] == 0 and states[-1] == ("finished", 1)  # recorded before it ran; finished with its result
    assert executor.names == ["a"]


async def test_a_bad_record_is_one_dead_letter_and_the_next_one_is_answered(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, b"{not json", key=b"s")
        broker.send(topics.suggestions, suggestion("s", [{"name": "b"}], template="nope"), key=b"s")
        broker.send(topics.suggestions, suggestion("s", [{"name": "after"}]), key=b"s")
        results = await until(broker, topics.results, 2, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 3, timeout=5, interval=0.005)
    letters = messages(broker, topics.dead_letters)
    assert sorted(m["error"]["type"] for m in letters) == ["invalid_json", "unknown_template"]
    # The unknown template's message is readable: its suggestion is answered, failed, besides its dead letter.
    answered = sorted((r["params"]["name"], r["status"], (r["error"] or {}).get("type")) for r in results)
    assert answered == [("after", "succeeded", None), ("b", "failed", "unknown_template")]


async def test_messages_within_the_linger_share_an_operation_cut_at_max_configs(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, batching={"linger_ms": 300, "max_configs": 2})
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    broker.send(topics.suggestions, suggestion("s", [{"name": "a"}]), key=b"s")
    broker.send(topics.suggestions, suggestion("s", [{"name": n} for n in "bcd"]), key=b"s")
    broker.send(topics.suggestions, suggestion("other", [{"name": "e"}]), key=b"s")
    async with serving(settings, broker, executor):
        results = await until(broker, topics.results, 5, RESULT)
    created = [m for m in messages(broker, topics.operations) if m["event"] == "created"]
    sizes = sorted((m["study"], len(m["operation"]["matrix"]["values"])) for m in created)
    assert sizes == [("other", 1), ("s", 2), ("s", 2)]
    by_operation: dict[str, set[str]] = {}
    for r in results:
        by_operation.setdefault(r["operation_id"], set()).add(r["params"]["name"])
    assert sorted(map(sorted, by_operation.values())) == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_suggestion_sent_again_is_replayed_and_other_params_are_a_conflict(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["x"]), key=b"s")
        await until(broker, topics.results, 1, RESULT)
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["x"]), key=b"s")
        broker.send(topics.suggestions, suggestion("s", [{"name": "other"}], ids=["x"]), key=b"s")
        results = await until(broker, topics.results, 3, RESULT)
        letters = await until(broker, topics.dead_letters, 1)
        await eventually(lambda: committed(broker, topics.suggestions) == 3, timeout=5, interval=0.005)
    assert [r.get("replayed", False) for r in results] == [False, True, False]
    assert results[0]["run_id"] == results[1]["run_id"]
    # The conflict is answered under a run id of its own: the first params' run keeps its one final result.
    assert (results[2]["suggestion_id"], results[2]["status"], results[2]["error"]["type"]) == (
        "x",
        "failed",
        "conflicting_suggestion",
    )
    assert results[2]["run_id"] != results[0]["run_id"]
    assert [m["error"]["type"] for m in letters] == ["conflicting_suggestion"]
    assert executor.names == ["a"]  # run once


async def test_a_rebalance_loses_no_run_and_publishes_none_twice(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker, executor = MemoryBroker(settings), FakeExecutor(hold=True)
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": n} for n in "abc"]), key=b"s")
        await eventually(lambda: len(executor.running) == 3, timeout=5, interval=0.005)
        await broker.consumers[0].rebalance()  # every partition revoked, then assigned back to this replica
        executor.release()
        broker.send(topics.suggestions, suggestion("s", [{"name": "d"}]), key=b"s")
        results = await until(broker, topics.results, 4, RESULT)
        await eventually(lambda: committed(broker, topics.suggestions) == 2, timeout=5, interval=0.005)
    assert sorted(r["params"]["name"] for r in messages(broker, topics.results, RESULT)) == ["a", "b", "c", "d"]
    assert len(results) == 4


async def test_runs_in_flight_stay_bounded_and_consumption_resumes_when_they_finish(tmp_path: Path) -> None:
    max_in_flight, per_message = 4, 10
    settings = memory_settings(tmp_path, max_in_flight=max_in_flight, batching={"linger_ms": 0})
    broker, executor = MemoryBroker(settings), FakeExecutor(hold=True)
    topics = settings.topics
    for m in range(3):
        broker.send(topics.suggestions, suggestion("s", [{"name": f"m{m}-{r}"} for r in range(per_message)]), key=b"s")
    async with serving(settings, broker, executor) as service:
        consumer = broker.consumers[0]
        # One whole message is taken while there is room, then every partition is paused: the rest waits.
        await eventually(lambda: service.in_flight == per_message and bool(consumer.paused()), timeout=5)
        assert consumer.paused() == consumer.assignment()
        # Its `received` records are durable, so its offset is committed; the others are not taken.
        await eventually(lambda: committed(broker, topics.suggestions) == 1, timeout=5, interval=0.005)
        assert service.in_flight == per_message
        peak = service.in_flight
        executor.release()
        while len(messages(broker, topics.results, RESULT)) < 3 * per_message:
            peak = max(peak, service.in_flight)
            await broker.wait_for_records(0.05)
        await eventually(lambda: not consumer.paused(), timeout=5, interval=0.005)
    names = [r["params"]["name"] for r in messages(broker, topics.results, RESULT)]
    assert sorted(names) == sorted(f"m{m}-{r}" for m in range(3) for r in range(per_message))  # each once
    assert peak <= max_in_flight + per_message - 1


async def test_a_runs_process_group_is_in_the_ledger_while_it_runs_and_before_its_result(tmp_path: Path) -> None:
    # The record with the process group is queued, not waited for (issue 9): it must still commit while the run
    # runs (a later owner reaps from it), and before the `finished` record that ends the run.
    settings = memory_settings(tmp_path, batching={"linger_ms": 0})
    broker, executor = MemoryBroker(settings), FakeExecutor(hold=True)
    topics = settings.topics
    async with serving(settings, broker, executor):
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        await eventually(
            lambda: any(m.get("dispatch") for m in messages(broker, topics.ledger)), timeout=5, interval=0.005
        )
        assert messages(broker, topics.results, RESULT) == []  # still running
        executor.release()
        await until(broker, topics.results, 1, RESULT)
    ledger = [(m["state"], bool(m.get("dispatch"))) for m in messages(broker, topics.ledger, LEDGER)]
    # Its grant, in place of `received` (`service/ledger/early_start.py`); its attempt, with the process group (the
    # record without it replaced if that one had not left yet); finished, last.
    assert ledger[0] == ("dispatched", False)
    assert ledger[-2:] == [("dispatched", True), ("finished", False)]
    assert ledger[1:-2] in ([], [("dispatched", False)])
