"""Suggestions in through Kafka, results out, on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.client import BridgeClient
from tests.service.service_support import count_results, read_until, running, service_settings

pytestmark = pytest.mark.kafka


async def test_suggestions_become_runs_whose_results_reach_the_optimizer(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings), BridgeClient(kafka=settings.kafka, topics=settings.topics) as client:
        ids = await client.submit(
            "study-a",
            "job",
            [
                {"id": "t-1", "params": {"name": "a", "values": "0.5,0.3"}},
                {"params": {"name": "b", "values": "0.4"}},
            ],
            iteration=1,
            metadata={"optimizer": "test"},
        )
        results = await client.results("study-a", ids, timeout=60)
    assert ids[0] == "t-1"
    assert ids[1].startswith("s-")
    first, second = results["t-1"], results[ids[1]]
    assert first.status.value == second.status.value == "succeeded"
    assert first.outputs == {"loss": 0.3}
    assert second.outputs == {"loss": 0.4}
    assert first.params["name"] == "a"
    assert first.iteration == 1
    assert first.metadata == {"optimizer": "test"}
    assert first.study == "study-a"
    assert first.template == "job"
    assert first.operation_id == second.operation_id  # one message, one mapping operation

    ops = await read_until(
        kafka_bootstrap, settings.topics.operations, lambda ms: any(m["event"] == "finished" for m in ms)
    )
    created = next(m for m in ops if m["event"] == "created")
    assert created["operation"]["matrix"]["kind"] == "mapping"
    assert [v["name"] for v in created["operation"]["matrix"]["values"]] == ["a", "b"]
    finished = next(m for m in ops if m["event"] == "finished")
    assert finished["counts"]["succeeded"] == 2

    progress = await read_until(kafka_bootstrap, settings.topics.results, count_results(2))
    assert any(m["schema"] == "bridge.progress/v1" and m["metrics"] == {"loss": 0.5} for m in progress)
