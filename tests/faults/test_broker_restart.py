"""The broker stopped and restarted in the middle of a study: the bridge keeps running through the outage and
every suggestion still gets exactly one final result, with no run started twice but those in flight then."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Study, stop_all
from tests.kafka_broker import ExternalKafkaBroker, KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

SEED = 20261128


async def test_broker_stopped_and_restarted_mid_study(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    if not kafka_broker.can_restart:
        pytest.skip("the broker is external (BRIDGE_KAFKA_BOOTSTRAP): this session cannot restart it")
    rng = random.Random(SEED)
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=4)
    replica = cluster.replica("a")
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=SEED)
    checker = Checker(cluster, study, "broker_restart")
    faults: list[Fault] = []
    try:
        replica.start()
        await replica.wait_ready()
        study.start()
        await checker.executions.wait_running(since=replica.started_at, timeout=45)
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # a random moment mid-study
        down = time.time()
        in_flight = {e.name for e in checker.executions.running(since=0)}
        async with kafka_broker.outage():
            # Runs go on while the broker is away: wait until those in flight at the stop have ended, with
            # nowhere to publish their results.
            ended = await checker.executions.wait_ended(in_flight, timeout=15)
            print(f"broker down at {down:.2f}; {ended}/{len(in_flight)} runs in flight then ended during the outage")
        up = time.time()
        print(f"broker up again after {up - down:.1f}s; {study.sent} messages sent")
        faults += [Fault(down, "broker stopped"), Fault(up, "broker started")]
        assert replica.alive(), f"the bridge died with the broker:\n{replica.log_tail()}"
        await study.finished()
        missing = await checker.wait_for_results(timeout=60)
        print(f"study done at {time.time():.2f}; {len(missing)} suggestions without a result")
        problems = []
        if not replica.ready():
            problems.append(f"/readyz is not 200 after the broker came back:\n{replica.log_tail(15)}")
        problems += await stop_all(cluster.replicas)
    finally:
        study.cancel()
        cluster.kill_all()
    await checker.check(faults, extra_problems=problems)
