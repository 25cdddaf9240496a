"""Rebalances while runs end: two replicas serve a study of short runs while a third joins and leaves twice, so
partitions are revoked and assigned back again and again just as runs finish. Every result is published once,
by the partition's owner, and no run runs again but across a partition that moved."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20261208


async def test_replicas_join_and_leave_while_runs_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=4)
    steady = [cluster.replica("a"), cluster.replica("b")]
    # Spread over 30 s: both rounds of joining and leaving land while runs are in flight and ending.
    study = Study(
        kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED, sleep=(0.05, 0.3), publish_over_s=30.0
    )
    checker = Checker(cluster, study, "rebalance_while_runs_end")
    faults: list[Fault] = []
    try:
        for replica in steady:
            replica.start()
        await asyncio.gather(*(r.wait_ready(timeout=90) for r in steady))
        study.start()
        await checker.executions.wait_running(since=time.time() - 1, timeout=45)
        for round_ in range(2):
            joiner = cluster.replica(f"j{round_}")
            joiner.start()
            await joiner.wait_ready(timeout=90)
            faults.append(Fault(time.time(), f"replica j{round_} joined: partitions moved"))
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # runs end meanwhile
            left = time.time()
            code = await joiner.terminate(timeout=60)
            faults.append(Fault(left, f"replica j{round_} left (exit {code}): partitions moved back"))
            assert code == 0, f"replica j{round_} exited {code}:\n{joiner.log_tail()}"
        problems = await checker.settle(timeout=90)
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
