"""A replica SIGSTOPped mid-study past its consumer-group session and its lease, then woken: a zombie. The other
replica takes its partitions and runs what it had in flight again, with a higher attempt; the zombie, woken,
starts nothing more (its lease ran out, its records cannot commit) and publishes nothing, and the history holds:
one final result per run, no attempt executed twice."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20261207
PAUSE_S = 16.0  # past aiokafka's 10 s session timeout and the 3 s lease


async def test_a_replica_paused_past_its_session_and_woken(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=2, concurrency=2)
    zombie, other = cluster.replica("a"), cluster.replica("b")
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED, sleep=(0.2, 1.5))
    checker = Checker(cluster, study, "zombie")
    faults: list[Fault] = []
    try:
        for replica in (zombie, other):
            replica.start()
        await asyncio.gather(zombie.wait_ready(timeout=90), other.wait_ready(timeout=90))
        await eventually(
            lambda: zombie.ready() and other.ready(), timeout=60, interval=0.1, in_thread=True, what="never both ready"
        )
        study.start()
        await checker.executions.wait_running(since=zombie.started_at, workdir=zombie.workdir, timeout=45)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        paused = zombie.pause()
        faults.append(Fault(paused, "replica a paused past its session", zombie.workdir))
        await asyncio.sleep(PAUSE_S)  # the pause's length, not a synchronisation
        woken = zombie.resume()
        faults.append(Fault(woken, "replica a woken", zombie.workdir))
        print(f"paused a at {paused:.2f} for {woken - paused:.1f}s; {study.sent} messages sent")
        problems = await checker.settle(timeout=90)
        # Woken, the zombie rejoins the group: partitions move again, and runs in flight on them may run again.
        moved = sorted({at for r in (zombie, other) for at in r.rebalances(since=woken)})
        faults += [Fault(at, "the group moved partitions after the wake") for at in moved]
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
