"""Faults the network makes, on the real broker: one of two replicas reaches the broker only through a proxy this
test owns (tests/faults/proxy.py), and the link is cut, silenced, slowed, made lossy, or loses the answer of a
transaction's commit, while suggestions keep arriving. The replica keeps running meanwhile: its runs go on, its
lease ages, the group moves its partitions, and it comes back.

Each scenario: every suggestion answered exactly once and the history checker's rules held (attempts only
growing; a run that may have run twice says so with its attempt), both replicas drain and exit 0 after, the
replica behind the proxy says 503 on `/readyz` while it is cut off and 200 after, and the other replica's
`/healthz` stays 200 throughout. The proxy's seed is printed; BRIDGE_NETWORK_SEED replays it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import Checker, Cluster, Fault, Replica, Study, read_to_end, stop_all
from tests.faults.proxy import FaultyLink
from tests.kafka_broker import ExternalKafkaBroker, KafkaBroker
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]

SEED = int(os.environ.get("BRIDGE_NETWORK_SEED", "20261207"))
SAMPLE_S = 0.5  # how often both replicas' health is sampled
ARRIVING_MEANWHILE = 5  # suggestion messages sent while a replica is cut off or silenced
SLOW_REQUESTS = 100  # requests over the slow link (200 ms each), then
LOSSY_RESETS = 10  # connections reset on the lossy link
LOST_COMMIT_ANSWERS = 3  # EndTxn answers lost in a row: the first commit's, then its retries' (aiokafka retries)


@dataclass
class Samples:
    """The health of both replicas, sampled all along: (when, proxied replica ready, other replica healthy)."""

    taken: list[tuple[float, bool, bool]] = field(default_factory=list)
    not_ready_seen: list[float] = field(default_factory=list)  # by a fault's own condition, between samples

    def not_ready_between(self, began: float, ended: float) -> float | None:
        """Seconds from `began` to the first time the proxied replica was seen not ready, if any before `ended`
        (a fault ends as soon as its condition sees it: the 503 can be shorter than the sampling period)."""
        seen = [at for at, ready, _ in self.taken if not ready] + self.not_ready_seen
        late = [at for at in seen if began <= at <= ended]
        return min(late) - began if late else None

    def other_unhealthy(self) -> list[float]:
        return [at for at, _, healthy in self.taken if not healthy]


async def _sample(cut_off: Replica, other: Replica, samples: Samples) -> None:
    while True:
        ready, healthy = await asyncio.gather(asyncio.to_thread(cut_off.ready), asyncio.to_thread(other.healthy))
        samples.taken.append((time.time(), ready, healthy))
        await asyncio.sleep(SAMPLE_S)  # the sampling period, not a synchronisation


Scenario = Callable[["Sides"], Awaitable[tuple[float, float]]]
"""Makes the fault on the link until what it is for has happened; returns when it began and when it healed."""


async def _through_the_proxy(
    kafka_broker: KafkaBroker | ExternalKafkaBroker,
    kafka_bootstrap: str,
    tmp_path: Path,
    label: str,
    scenario: Scenario,
    *,
    publish_over_s: float,
    cut_off: bool,
) -> None:
    if kafka_broker.proxied is None:
        pytest.skip("the broker is external (BRIDGE_KAFKA_BOOTSTRAP): it has no listener for the test's proxy")
    bound, advertised = kafka_broker.proxied
    seed = SEED + sum(map(ord, label))
    print(f"network {label}: seed {seed} (BRIDGE_NETWORK_SEED={SEED} replays it)")
    rng = random.Random(seed)
    link = FaultyLink(advertised, bound, seed=seed)
    await link.start()
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=2, concurrency=2)
    proxied = cluster.replica("a", bootstrap=f"127.0.0.1:{advertised}")
    other = cluster.replica("b")
    study = Study(kafka_bootstrap, cluster.settings.topics.suggestions, seed=seed, publish_over_s=publish_over_s)
    checker = Checker(cluster, study, f"network_{label}")
    samples = Samples()
    sampler: asyncio.Task[None] | None = None
    faults: list[Fault] = []
    try:
        for replica in (proxied, other):
            replica.start()
        await asyncio.gather(proxied.wait_ready(timeout=90), other.wait_ready(timeout=90))
        sampler = asyncio.create_task(_sample(proxied, other, samples))
        study.start()
        await checker.executions.wait_running(since=proxied.started_at, workdir=proxied.workdir, timeout=45)
        moment = study.sent + rng.randint(1, 4)  # a random moment mid-study: after a few more messages
        await eventually(lambda: study.sent >= moment, timeout=60, what="the study stopped sending")
        began, healed = await scenario(Sides(link, proxied, other, study, samples))
        faults += [Fault(began, f"{label}: began", proxied.workdir), Fault(healed, f"{label}: healed", proxied.workdir)]
        assert proxied.alive(), f"the replica behind the proxy died:\n{proxied.log_tail()}"
        await eventually(proxied.ready, timeout=90, interval=0.25, in_thread=True, what="/readyz not 200 after")
        recovered = time.time() - healed
        await study.finished()
        missing = await checker.wait_for_results(timeout=120)
        sampler.cancel()  # before the replicas stop: a replica draining says 503, as it should
        print(f"network {label}: study done, {len(missing)} suggestions without a result")
        problems = await stop_all(cluster.replicas)
        # The link back, the replica rejoins the group: partitions move again, runs in flight on them may run again.
        moved = sorted({at for r in (proxied, other) for at in r.rebalances(since=began)})
        faults += [Fault(at, f"{label}: the group moved partitions") for at in moved]
    finally:
        if sampler is not None:
            sampler.cancel()
        study.cancel()
        cluster.kill_all()
        await link.stop()
    noticed = samples.not_ready_between(began, healed)
    print(
        f"network {label}: fault {healed - began:.1f}s; /readyz of a 503 after "
        f"{'never' if noticed is None else f'{noticed:.1f}s'}, 200 again {recovered:.1f}s after the heal; "
        f"/healthz of b 200 in {len(samples.taken) - len(samples.other_unhealthy())}/{len(samples.taken)} samples; "
        f"link {link.counts}; {len(moved)} rebalances"
    )
    results, _ = await read_to_end(kafka_bootstrap, cluster.settings.topics.results)
    print(f"network {label}: results of one study stopped for at most {_longest_gap(results, began):.1f}s")
    if cut_off:
        problems += [] if noticed is not None else ["/readyz of the cut-off replica stayed 200 while it was cut off"]
    problems += [f"/healthz of the other replica not 200 at {at:.1f}" for at in samples.other_unhealthy()[:3]]
    await checker.check(faults, extra_problems=problems)


def _longest_gap(results: list[Any], since: float) -> float:
    """The longest a study waited between two of its results (record timestamps) after `since`: what the fault
    cost a user in time."""
    by_study: dict[bytes, list[float]] = {}
    for record in results:
        if b'"bridge.result/v1"' in (record.value or b""):  # final results, not progress events
            by_study.setdefault(record.key or b"", []).append(record.timestamp / 1000)
    gaps = [
        later - earlier
        for times in by_study.values()
        for earlier, later in itertools.pairwise(sorted(times))
        if later >= since
    ]
    return max(gaps, default=0.0)


@dataclass(frozen=True)
class Sides:
    """What a scenario watches: the link, the replica behind it, the other replica, the study."""

    link: FaultyLink
    cut_off: Replica
    other: Replica
    study: Study
    samples: Samples


async def _until(what: str, condition: Callable[[], bool], *, timeout: float = 120) -> None:
    """A fault lasts until what it is for has happened (polled off the loop: `/readyz` is HTTP)."""
    await eventually(condition, timeout=timeout, interval=0.25, in_thread=True, what=what)


def _taken_over(sides: Sides, since: float, sent: int) -> Callable[[], bool]:
    """The replica behind the link says it cannot serve, the group gave its partitions to the other one, and
    suggestions went on arriving meanwhile."""

    def cut_off_not_ready() -> bool:
        if sides.cut_off.ready():
            return False
        sides.samples.not_ready_seen.append(time.time())
        return True

    return lambda: (
        cut_off_not_ready()
        and bool(sides.other.rebalances(since=since))
        and sides.study.sent >= sent + ARRIVING_MEANWHILE
    )


async def _cut(sides: Sides) -> tuple[float, float]:
    began, sent = time.time(), sides.study.sent
    sides.link.cut()
    await _until("the cut-off replica's partitions never moved", _taken_over(sides, began, sent))
    sides.link.heal()
    return began, time.time()


async def _slow_then_lossy(sides: Sides) -> tuple[float, float]:
    began, link = time.time(), sides.link
    link.slow(0.2, 0.05)
    frames = link.counts.frames
    await _until("too few requests over the slow link", lambda: link.counts.frames >= frames + SLOW_REQUESTS)
    link.heal()
    link.lossy(0.05)
    await _until("too few resets on the lossy link", lambda: link.counts.resets >= LOSSY_RESETS)
    link.heal()
    return began, time.time()


async def _silent(sides: Sides) -> tuple[float, float]:
    began, sent = time.time(), sides.study.sent
    sides.link.silence()
    await _until("the silenced replica's partitions never moved", _taken_over(sides, began, sent))
    sides.link.heal()
    return began, time.time()


async def _commit_answer_lost(sides: Sides) -> tuple[float, float]:
    began, link = time.time(), sides.link
    link.lose_end_txn_answer(LOST_COMMIT_ANSWERS)  # the commit's answer, and the answers of its retries
    await eventually(
        lambda: link.counts.end_txn_answers_lost >= LOST_COMMIT_ANSWERS,
        timeout=60,
        what=lambda: f"only {link.counts.end_txn_answers_lost} commits through the proxy",
    )
    link.heal()
    return began, time.time()


async def test_a_replica_cut_off_until_the_other_took_its_partitions(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    await _through_the_proxy(kafka_broker, kafka_bootstrap, tmp_path, "cut", _cut, publish_over_s=45, cut_off=True)


async def test_a_slow_then_lossy_link(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    await _through_the_proxy(
        kafka_broker, kafka_bootstrap, tmp_path, "slow_lossy", _slow_then_lossy, publish_over_s=60, cut_off=False
    )


async def test_the_broker_silent_on_one_replicas_connections_until_the_group_moved_them(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    await _through_the_proxy(
        kafka_broker, kafka_bootstrap, tmp_path, "silent", _silent, publish_over_s=35, cut_off=True
    )


async def test_the_link_lost_in_the_middle_of_a_commit(
    kafka_broker: KafkaBroker | ExternalKafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    await _through_the_proxy(
        kafka_broker, kafka_bootstrap, tmp_path, "commit_lost", _commit_answer_lost, publish_over_s=20, cut_off=False
    )
