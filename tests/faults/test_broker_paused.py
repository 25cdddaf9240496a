"""The broker SIGSTOPped for 20 s mid-study: it accepts connections and answers nothing. The bridge says so on
`/readyz` (503) while it lasts, keeps its runs going, and once the broker answers again every suggestion gets
exactly one final result, and the history holds."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study
from tests.kafka_broker import ExternalKafkaBroker, KafkaBroker, wait_until_groups_form
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20261206
PAUSE_S = 20.0


async def test_broker_paused_mid_study(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    if not kafka_broker.can_restart:
        pytest.skip("the broker is external (BRIDGE_KAFKA_BOOTSTRAP): this session cannot pause it")
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=4)
    replica = cluster.replica("a")
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED)
    checker = Checker(cluster, study, "broker_paused")
    faults: list[Fault] = []
    try:
        replica.start()
        await replica.wait_ready()
        study.start()
        await checker.executions.wait_running(since=replica.started_at, timeout=45)
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # a random moment mid-study
        began = time.time()
        async with kafka_broker.paused():
            # `/readyz` tells the truth within the pause (its probe gives up after its own timeout).
            await eventually(
                lambda: not replica.ready(),
                timeout=PAUSE_S - 2,
                interval=0.25,
                in_thread=True,
                what="/readyz stayed 200 while the broker answered nothing",
            )
            noticed = time.time() - began
            await asyncio.sleep(max(0.0, PAUSE_S - noticed))  # the outage's length, not a synchronisation
        ended = time.time()
        print(f"broker paused {ended - began:.1f}s; /readyz 503 after {noticed:.1f}s; {study.sent} messages sent")
        faults += [Fault(began, "broker paused"), Fault(ended, "broker resumed")]
        assert replica.alive(), f"the bridge died with the broker paused:\n{replica.log_tail()}"
        await eventually(replica.ready, timeout=60, interval=0.25, in_thread=True, what="/readyz not 200 again")
        # The broker itself takes a while to serve new groups again (its controller fenced it): the tests after
        # this one start replicas in new groups, and must not inherit that.
        healed = await wait_until_groups_form(kafka_bootstrap)
        print(f"a new consumer group formed {healed:.1f}s after the /readyz check")
        problems = await checker.settle(timeout=90)
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
