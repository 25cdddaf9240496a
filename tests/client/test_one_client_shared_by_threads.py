"""One client shared by threads on the real broker: threads that run its coroutines on its loop
(`asyncio.run_coroutine_threadsafe(..., client.loop)`) each get their study's results; a thread that awaits one
on a loop of its own gets a clear error at once, not a silent loss."""

from __future__ import annotations

import asyncio

import pytest

from bridge.client import BridgeClient, WrongLoop
from bridge.config.sections import KafkaSettings
from bridge.contract.results import RunResult
from tests.client.client_support import fresh_topics, publish, result

pytestmark = pytest.mark.kafka


async def test_threads_share_a_client_through_its_loop(kafka_bootstrap: str) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    ids = {f"s{s}": [f"t{s}-{n}" for n in range(20)] for s in range(4)}
    async with BridgeClient(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), topics=topics) as client:

        def in_thread(study: str) -> dict[str, RunResult]:
            wait = client.results(study, ids[study], timeout=60)
            return asyncio.run_coroutine_threadsafe(wait, client.loop).result(timeout=90)

        def on_own_loop() -> None:
            asyncio.run(client.results("s0", ids["s0"], timeout=60))

        with pytest.raises(WrongLoop, match="run_coroutine_threadsafe"):
            await asyncio.to_thread(on_own_loop)
        waits = [asyncio.create_task(asyncio.to_thread(in_thread, study)) for study in ids]
        await publish(
            kafka_bootstrap, topics.results, [result(s, sids[n]) for n in range(20) for s, sids in ids.items()]
        )
        got = [await w for w in waits]

    assert [sorted(g) for g in got] == [sorted(sids) for sids in ids.values()]
