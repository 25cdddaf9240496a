"""Three replicas in one group; mid-study one is killed with -9 and another joins: every suggestion still gets
exactly one final result, and the only runs started twice are those in flight on the replica that died, or in
flight on a partition that moved to the replica that joined (aiokafka has no cooperative rebalancing: the old
owner of a moved partition is fenced, so its runs there run again, with attempt + 1, on the new owner)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

SEED = 20261129


async def test_three_replicas_one_killed_one_added(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=2, concurrency=2)
    first = [cluster.replica(name) for name in ("a", "b", "c")]
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED)
    checker = Checker(cluster, study, "group_changes")
    faults: list[Fault] = []
    try:
        for replica in first:
            replica.start()
        await asyncio.gather(*(r.wait_ready(timeout=90) for r in first))
        # Ready together: the group settled with a partition (at least) for each.
        await eventually(
            lambda: all(r.ready() for r in first),
            timeout=60,
            interval=0.1,
            in_thread=True,
            what="the three replicas were never ready together",
        )
        study.start()
        victim = rng.choice(first)
        await checker.executions.wait_running(since=victim.started_at, workdir=victim.workdir, timeout=45)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        at = victim.kill9()
        faults.append(Fault(at, f"kill -9 of replica {victim.name}", victim.workdir))
        joiner = cluster.replica("d")
        joiner.start()
        took = await joiner.wait_ready(timeout=90)
        faults.append(Fault(time.time(), "replica d joined: partitions moved", None))
        print(f"killed {victim.name} at {at:.2f}; d ready after {took:.1f}s; {study.sent} messages sent")
        problems = await checker.settle(timeout=60)
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
