"""A replica that learns it was fenced, or whose partition left, starts none of that partition's runs: not the
ones still being batched, not an attempt whose record could not be committed. Its next owner runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.messages import LedgerRecord
from bridge.contract.results import RunResult, RunStatus
from bridge.errors import Fenced, HandedOver
from bridge.kafka.base import Outgoing
from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import Partition
from bridge.service.intake import Accepted, Templates, accept
from bridge.service.ledger.topic_ledger import TopicLedger
from bridge.service.registry import RunRegistry
from bridge.service.runs import RunItem, received_record
from tests.polling import eventually
from tests.service.memory_support import RESULT, FakeExecutor, memory_settings, messages, one_held_run, serving, until
from tests.service.service_support import suggestion


async def test_a_fenced_replica_starts_none_of_its_batched_runs(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path, batching={"linger_ms": 60_000})
    broker, executor = MemoryBroker(settings), FakeExecutor()
    topics = settings.topics
    async with serving(settings, broker, executor) as service:
        broker.send(topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        await eventually(lambda: service.in_flight == 1, timeout=5, interval=0.005)
        (part,) = {r.partition for r in broker.records(topics.suggestions)}
        broker.fence(f"{settings.kafka.group_id}.{topics.suggestions}.{part}")  # another replica took it
        # Its next transaction tells it: the record of this later suggestion cannot commit.
        broker.send(topics.suggestions, suggestion("s", [{"name": "b"}], ids=["b1"]), key=b"s")
        await eventually(lambda: service.in_flight == 0, timeout=5, interval=0.005)
    # Leaving starts what is still batched (the drain): a fenced replica must have none of it left.
    assert executor.names == []
    assert messages(broker, topics.results, RESULT) == []


def _item(tmp_path: Path) -> tuple[RunRegistry, RunItem]:
    settings = memory_settings(tmp_path)
    accepted = accept(suggestion("s", [{"name": "a"}], ids=["a1"]), Templates(settings), settings)
    assert isinstance(accepted, Accepted) and accepted.operation is not None
    run = accepted.runs[0]
    record = received_record(run, "s", "job", None, "fp")
    item = RunItem(run=run, operation=accepted.operation, source=Partition("suggestions", 0), record=record, offset=0)
    registry = RunRegistry(8)
    registry.add(item)
    return registry, item


@pytest.mark.parametrize("registered", [True, False])
async def test_an_attempt_whose_record_cannot_commit_is_handed_over(tmp_path: Path, registered: bool) -> None:
    registry, item = _item(tmp_path)
    lost: list[str] = []

    async def fenced(part: Partition, out: Outgoing) -> None:
        raise Fenced(f"{part} is another replica's")

    ledger = TopicLedger(registry, "ledger", fenced, lost.append)
    if not registered:
        registry.pop(item.run.run_id)  # the partition was handed over meanwhile
    with pytest.raises(HandedOver):
        await ledger.attempt_starting("op", item.run.run_id, 2)
    assert lost == ([item.run.run_id] if registered else [])


async def test_a_run_that_ends_while_its_partition_is_assigned_again_keeps_its_one_result(tmp_path: Path) -> None:
    """aiokafka revokes and assigns back at each rebalance: a run that ends after the assignment, before the
    partition's publisher is made again, is published once it is, as attempt 1, and never runs again."""
    async with one_held_run(tmp_path) as (settings, broker, executor, service):
        topics = settings.topics
        reconciler = service._reconciler
        reconcile = reconciler.reconcile

        async def after_the_run_ended(*args: Any, **kwargs: Any) -> Any:
            if executor.running:  # the first partition reconciled: the run ends now, before any publisher is made
                executor.release()
                # Its result handed to the service: parked for its partition, or (before the fix) dropped.
                ownership = service._ownership
                await eventually(lambda: bool(ownership._parked) or service.in_flight == 0, timeout=5, interval=0.005)
            return await reconcile(*args, **kwargs)

        reconciler.reconcile = after_the_run_ended  # type: ignore[method-assign]
        await broker.consumers[0].rebalance()
        (result,) = await until(broker, topics.results, 1, RESULT)
        reconciler.reconcile = reconcile  # type: ignore[method-assign]
        await eventually(lambda: service.in_flight == 0, timeout=5, interval=0.005)
    assert (result["suggestion_id"], result["status"], result["attempt"]) == ("a1", "succeeded", 1)
    assert executor.names == ["a"]  # once: not run again as attempt 2
    assert len(messages(broker, topics.results, RESULT)) == 1


async def test_a_fenced_replica_given_its_partition_back_answers_every_suggestion(tmp_path: Path) -> None:
    """A zombie woken: its producer fenced by the replica that took its partition, it hands its runs over, then
    the group gives it the partition back (the other replica left meanwhile). What it had in flight runs again
    from the ledger, and every suggestion gets its one result."""
    settings = memory_settings(tmp_path, executor={"max_parallel": 2}, batching={"linger_ms": 0})
    broker, executor = MemoryBroker(settings), FakeExecutor(hold=True, max_parallel=2)
    topics = settings.topics
    names = [f"r{i}" for i in range(6)]
    async with serving(settings, broker, executor) as service:
        broker.send(topics.suggestions, suggestion("s", [{"name": n} for n in names[:3]], ids=names[:3]), key=b"s")
        broker.send(topics.suggestions, suggestion("s", [{"name": n} for n in names[3:]], ids=names[3:]), key=b"s")
        await eventually(lambda: len(executor.running) == 2, timeout=5, interval=0.005)
        (part,) = {r.partition for r in broker.records(topics.suggestions)}
        broker.fence(f"{settings.kafka.group_id}.{topics.suggestions}.{part}")
        broker.send(topics.suggestions, suggestion("s", [{"name": "late"}], ids=["late"]), key=b"s")
        await eventually(lambda: service.in_flight == 0, timeout=5, interval=0.005)  # all handed over
        executor.release()
        await broker.consumers[0].rebalance()  # the partition comes back
        results = await until(broker, topics.results, 7, RESULT)
    assert sorted(r["suggestion_id"] for r in results) == sorted([*names, "late"])


async def test_a_run_that_ends_while_its_partition_is_reconciled_keeps_its_one_result(tmp_path: Path) -> None:
    """A run that ends while its partition is reconciled (its publisher made again, its ledger about to be read):
    its result waits for the reconciliation. Published at once, the transaction carrying its `finished` record
    could commit after the ledger read, which then saw the run unfinished and ran it again (the fuzz test's
    duplicated final results in CI, among many rebalances)."""
    async with one_held_run(tmp_path) as (settings, broker, executor, service):
        topics = settings.topics
        (run_id,) = list(service.registry)
        source = service.registry.get(run_id).source  # type: ignore[union-attr]
        publishers, reconciler = service._publishers, service._reconciler
        get, read_ledger = publishers.get, reconciler._read_ledger
        read = asyncio.Event()  # a transaction with a result commits only after the ledger read: a slow commit

        async def the_run_ends_as_the_partition_is_reconciled(part: Partition) -> Any:
            publisher = await get(part)
            if part != source or not executor.running:
                return publisher
            flush, transaction = publisher.flush, publisher._transaction

            async def slow(batch: list[Outgoing], offset: int | None) -> None:
                if any(r.topic == topics.results for r in batch):
                    await read.wait()
                await transaction(batch, offset)

            async def then_the_run_ends() -> None:
                await flush()
                publisher.flush = flush
                executor.release()  # its result comes as the ledger is about to be read
                parked = service._ownership._parked
                await eventually(lambda: run_id not in service.registry or bool(parked), timeout=5, interval=0)

            publisher.flush, publisher._transaction = then_the_run_ends, slow
            return publisher

        async def reading(partition: int, sink: Any) -> None:
            await read_ledger(partition, sink)
            read.set()

        publishers.get = the_run_ends_as_the_partition_is_reconciled  # type: ignore[method-assign]
        reconciler._read_ledger = reading
        await broker.consumers[0].rebalance()
        publishers.get, reconciler._read_ledger = get, read_ledger  # type: ignore[method-assign]
        # The ledger's unfinished runs taken up (none, or the run again), then all of them done.
        await eventually(lambda: not reconciler.has_backlog(source), timeout=5, interval=0.005)
        await eventually(lambda: service.in_flight == 0, timeout=5, interval=0.005)
        results = await until(broker, topics.results, 1, RESULT)
    assert [(r["suggestion_id"], r["attempt"]) for r in results] == [("a1", 1)]
    assert executor.names == ["a"]  # once: not run again by the reconciliation
    assert len(messages(broker, topics.results, RESULT)) == 1


async def test_a_partition_back_after_generations_without_this_replica_runs_nothing_twice(tmp_path: Path) -> None:
    """A replica cut off from the broker past its session keeps running what it had, then joins again and is
    given its partition back, while meanwhile the group gave it to another replica, which ran the same run and
    published its result (the network tests' cut, in CI: ten runs with two final results, attempt 1 twice).
    Back after more than one generation, the partition's runs still here are stale: stopped, never published; the
    ledger says what is left."""
    async with one_held_run(tmp_path) as (settings, broker, executor, service):
        topics = settings.topics
        (run_id,) = list(service.registry)
        item = service.registry.get(run_id)
        assert item is not None

        async def the_other_replica_runs_it() -> None:
            broker.fence(f"{settings.kafka.group_id}.{topics.suggestions}.{item.source.partition}")
            theirs = RunResult(
                study="s", template="job", operation_id="theirs", run_id=run_id, suggestion_id="a1", index=0,
                params={}, status=RunStatus.SUCCEEDED, attempt=2,
            )  # fmt: skip
            finished = LedgerRecord.finished_from(item.record, theirs).to_bytes()
            broker.send(topics.ledger, finished, key=run_id.encode(), partition=item.source.partition)
            broker.send(topics.results, theirs.to_json().encode(), key=b"s")

        await broker.consumers[0].rebalance(meanwhile=the_other_replica_runs_it, missed=1)
        executor.release()  # what still ran here ends now: before the fix, its result was published too
        await eventually(lambda: service.in_flight == 0, timeout=5, interval=0.005)
    results = messages(broker, topics.results, RESULT)
    assert [(r["suggestion_id"], r["operation_id"]) for r in results] == [("a1", "theirs")]
    assert executor.names == ["a"]  # not started again: the ledger says it finished


async def test_an_attempt_handed_over_while_its_record_waited_does_not_start(tmp_path: Path) -> None:
    """An attempt whose record waits for its partition to come back (handed over) is recorded when it does, but
    if its runs were given up meanwhile (another replica had the partition), it must not start here."""
    registry, item = _item(tmp_path)
    recorded: list[Outgoing] = []

    async def handed_over_while_waiting(part: Partition, out: Outgoing) -> None:
        registry.pop(item.run.run_id)  # `Rebalance.hand_over` while the record waited for the partition
        recorded.append(out)

    ledger = TopicLedger(registry, "ledger", handed_over_while_waiting, lambda run_id: None)
    with pytest.raises(HandedOver):
        await ledger.attempt_starting("op", item.run.run_id, 2)
    assert len(recorded) == 1  # the attempt is counted in the ledger; it just never runs
