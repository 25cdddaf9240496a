"""One client shared by several asyncio tasks on the real broker: each task waiting for its own study gets every
result, a `stream()` running alongside sees every result too, and `Study`s sharing the client get theirs."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bridge.client import BridgeClient, Study
from bridge.config.sections import KafkaSettings
from bridge.config.settings import BridgeSettings
from bridge.contract.results import RunResult
from tests.client.client_support import fresh_topics, publish, result

pytestmark = pytest.mark.kafka

STUDIES, EACH = 8, 50


async def test_tasks_waiting_for_their_studies_and_a_stream_each_get_every_result(kafka_bootstrap: str) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    ids = {f"s{s}": [f"t{s}-{n}" for n in range(EACH)] for s in range(STUDIES)}
    streamed: list[RunResult] = []

    async with BridgeClient(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), topics=topics) as client:

        async def stream_all() -> None:
            async for r in client.stream():
                streamed.append(r)
                if len(streamed) == STUDIES * EACH:
                    return

        waits = {study: asyncio.create_task(client.results(study, wanted, timeout=60)) for study, wanted in ids.items()}
        streaming = asyncio.create_task(stream_all())
        # Interleaved, as several studies' results come on a shared topic.
        await publish(kafka_bootstrap, topics.results, [result(s, i) for n in range(EACH) for s, i in _nth(ids, n)])
        got = {study: await task for study, task in waits.items()}
        await asyncio.wait_for(streaming, timeout=60)

    for study, wanted in ids.items():
        assert sorted(got[study]) == sorted(wanted)
        assert all(r.study == study for r in got[study].values())
    assert sorted((r.study, r.suggestion_id) for r in streamed) == sorted(
        (s, i) for s, wanted in ids.items() for i in wanted
    )


async def test_studies_and_a_results_wait_sharing_one_client_each_get_theirs(kafka_bootstrap: str) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    settings = BridgeSettings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), topics=topics)
    async with BridgeClient(kafka=settings.kafka, topics=topics) as client, contextlib.AsyncExitStack() as stack:
        studies = [
            await stack.enter_async_context(Study(study=f"st{n}", template="job", client=client)) for n in range(3)
        ]
        asked = {study.study: [await study.ask({"name": f"{study.study}-{k}"}) for k in range(4)] for study in studies}
        asked["direct"] = await client.submit(
            "direct", "job", [{"id": f"d{k}", "params": {"name": "d"}} for k in range(4)]
        )

        async def drain(study: Study) -> list[str]:
            return [str(r.suggestion_id) async for r in study.results(timeout=60)]

        waits = [asyncio.create_task(drain(s)) for s in studies]
        direct = asyncio.create_task(client.results("direct", asked["direct"], timeout=60))
        await publish(kafka_bootstrap, topics.results, [result(s, i) for k in range(4) for s, i in _nth(asked, k)])
        drained = {s.study: sorted(await w) for s, w in zip(studies, waits, strict=True)}
        drained["direct"] = sorted(await direct)

    assert drained == {study: sorted(sids) for study, sids in asked.items()}
    assert all(s.in_flight == 0 for s in studies)


def _nth(ids: dict[str, list[str]], n: int) -> list[tuple[str, str]]:
    return [(study, wanted[n]) for study, wanted in ids.items()]
