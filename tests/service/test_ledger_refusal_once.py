"""A refused ledger record is refused once: its tombstone settles it for every later reconciliation, by this
replica (its index caught up from the topic) or by one that reads the ledger from the start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.kafka.connection import ensure_topics
from tests.faults.harness import read_to_end
from tests.polling import eventually
from tests.service.service_support import (
    count_results,
    read_until,
    running,
    send_raw,
    send_record,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


async def test_a_refused_ledger_record_is_one_dead_letter_across_reconciliations(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, kafka={"topic_partitions": 1})
    await ensure_topics(
        settings.kafka, settings.topics, partitions=1, give_up_after_s=30, compacted=[settings.topics.ledger]
    )
    forged = {"schema": "bridge.ledger/v1", "run_id": "forged", "state": "received", "study": "s"}
    await send_record(kafka_bootstrap, settings.topics.ledger, json.dumps(forged).encode(), key=b"forged", partition=0)
    for round_, workdir in enumerate([tmp_path / "work", tmp_path / "work", tmp_path / "fresh-work"]):
        again = settings.model_copy(update={"workdir": workdir})
        async with running(again):
            # a suggestion answered after the reconcile: the service has been through the ledger by then
            await send_raw(
                kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": f"r{round_}"}])], key=b"s"
            )
            await read_until(kafka_bootstrap, settings.topics.results, count_results(round_ + 1), "bridge.result/v1")
    letters, problem = await read_to_end(kafka_bootstrap, settings.topics.dead_letters)
    assert problem == ""
    assert [json.loads(r.value)["error"]["type"] for r in letters] == ["invalid_ledger_record"]


async def test_a_refused_ledger_record_is_one_dead_letter_across_rebalances(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, kafka={"topic_partitions": 2})
    await ensure_topics(
        settings.kafka, settings.topics, partitions=2, give_up_after_s=30, compacted=[settings.topics.ledger]
    )
    async with running(settings) as first:
        for partition in (0, 1):
            forged = {
                "schema": "bridge.ledger/v1",
                "run_id": f"forged-{partition}",
                "state": "received",
                "study": "s",
            }
            value = json.dumps(forged).encode()
            await send_record(
                kafka_bootstrap, settings.topics.ledger, value, key=value[:0] + b"f%d" % partition, partition=partition
            )
        other = settings.model_copy(update={"workdir": tmp_path / "other"})
        async with running(other):  # joins: both reconcile what they are given
            await eventually(lambda: first.consumer is not None and len(first.consumer.assignment()) < 4, timeout=60)
            await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "a"}])], key=b"s")
            await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
        # the other one left: the first reconciles every partition again
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("t", [{"name": "b"}])], key=b"t")
        await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
        await eventually(lambda: first.consumer is not None and len(first.consumer.assignment()) == 4, timeout=60)
    letters, problem = await read_to_end(kafka_bootstrap, settings.topics.dead_letters)
    assert problem == ""
    keys = sorted(r.key for r in letters)
    assert keys == [b"f0", b"f1"]
