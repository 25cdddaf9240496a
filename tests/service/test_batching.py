"""Suggestions of one study and template within linger_ms, up to max_configs, share one mapping operation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.service_support import (
    count_results,
    read_until,
    running,
    send_raw,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


async def test_messages_within_the_linger_share_an_operation(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 1500, "max_configs": 64})
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": "a"}]), suggestion("s", [{"name": "b"}, {"name": "c"}])],
            key=b"s",
        )
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(3), "bridge.result/v1")
    assert len({r["operation_id"] for r in results}) == 1


async def test_batches_are_cut_at_max_configs(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 1500, "max_configs": 2})
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": n} for n in "abcde"])],
            key=b"s",
        )
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(5), "bridge.result/v1")
        ops = await read_until(
            kafka_bootstrap,
            settings.topics.operations,
            lambda ms: sum(m["event"] == "created" for m in ms) >= 3,
        )
    sizes = sorted(len(m["operation"]["matrix"]["values"]) for m in ops if m["event"] == "created")
    assert sizes == [1, 2, 2]
    assert len({r["operation_id"] for r in results}) == 3


async def test_other_studies_are_not_batched_together(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 1500, "max_configs": 64})
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s1", [{"name": "a"}])], key=b"s1")
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s2", [{"name": "a"}])], key=b"s2")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    assert len({r["operation_id"] for r in results}) == 2
