"""One client, 8 studies, 1,000 one-suggestion messages through `bridge serve` (its own process) on the real
broker, then `results(study, ids)` for each study in turn: every answer reaches the client (issue: 625 of 1,000
did, the rest of each poll batch dropped when one study's wait returned)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from tests.client.client_support import serve_process
from tests.service.service_support import count_results, read_until, service_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

STUDIES, MESSAGES = 8, 1000


async def test_every_answer_of_eight_studies_reaches_one_client(kafka_bootstrap: str, tmp_path: Path) -> None:
    # One params for all: one run, the rest answered from the cache, so the bridge answers fast.
    settings = service_settings(kafka_bootstrap, tmp_path, executor={"max_parallel": 2})
    async with (
        serve_process(tmp_path / "bridge.yaml", tmp_path),
        BridgeClient(kafka=settings.kafka, topics=settings.topics) as client,
    ):
        sent: dict[str, list[str]] = {f"study-{s}": [] for s in range(STUDIES)}
        for n in range(MESSAGES):
            study = f"study-{n % STUDIES}"
            sent[study] += await client.submit(study, "job", [{"id": f"t-{n}", "params": {"name": "same"}}])
        # As in the report: every answer is on the results topic before the client asks for any.
        await read_until(kafka_bootstrap, settings.topics.results, count_results(MESSAGES), timeout=120)
        began = time.monotonic()
        got = {study: await client.results(study, ids, timeout=60) for study, ids in sent.items()}
        waited = time.monotonic() - began

    assert sum(len(r) for r in got.values()) == MESSAGES, f"after {waited:.1f} s"
    for study, ids in sent.items():
        assert sorted(got[study]) == sorted(ids)
        assert {r.status.value for r in got[study].values()} == {"succeeded"}
        assert {r.study for r in got[study].values()} == {study}
