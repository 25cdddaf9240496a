"""`kill -9` of `bridge serve` at random moments, five times in one study, each followed by a restart: every
suggestion still gets exactly one final result, and only runs in flight at a kill run again (attempt + 1)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

SEED = 20261127
KILLS = 5


async def test_kill9_at_random_moments_then_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=4)
    replica = cluster.replica("a")
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED)
    checker = Checker(cluster, study, "kill9_restart")
    faults: list[Fault] = []
    try:
        replica.start()
        await replica.wait_ready()
        study.start()
        for n in range(KILLS):
            # A random moment once this incarnation is ready and has runs in flight.
            await checker.executions.wait_running(since=replica.started_at, timeout=45)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            at = replica.kill9()
            faults.append(Fault(at, f"kill -9 #{n + 1}", replica.workdir))
            replica.start()
            took = await replica.wait_ready(timeout=90)
            print(f"kill {n + 1} at {at:.2f}: ready again after {took:.1f}s; {study.sent} messages sent")
        problems = await checker.settle(timeout=60)
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
