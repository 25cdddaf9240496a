"""Hostile input on the real broker: 10,000 hostile records from a seeded grammar (tests/faults/hostile_grammar.py),
valid suggestions interleaved, through one running `bridge serve` (issue 7, "Done when", first bullet).

What it shows, for the records of every class (bytes, JSON shapes, numbers, unicode, depth, size, width, ids,
control, forged ledger records):
- no crash: the serve process never exits (and drains with exit 0 when told to);
- no stall: /healthz answers 200 at every poll, and results and dead letters keep coming while some are awaited;
- each hostile record ends in exactly one dead letter of its expected type (or a failed result where the contract
  allows one), matched by topic, partition and offset; a forged ledger record never runs (no marker file) and is
  dead-lettered once, although two rebalances (a second replica joining, then leaving) reconcile it again;
- every valid suggestion gets exactly one final result, succeeded (copies marked `replayed: true` aside);
- the serve process's RSS (VmRSS, sampled throughout) stays under 200 MB, and every dead letter is bounded.

The seed is printed (and can be set with BRIDGE_FUZZ_SEED); the closing lines give the counts per class.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.harness import PARTITIONS, Replica, duplicate_report, partitions_of, read_to_end
from tests.faults.history import History, order_problems, run_id_problems
from tests.faults.hostile_grammar import (
    LIMITS,
    MAX_MESSAGE_BYTES,
    TOKEN,
    Grammar,
    Item,
    Letter,
    Result,
    TopicRole,
    Verdict,
    judge,
    parse_letter,
    parse_result,
    run_owners,
    templates,
)
from tests.service.service_support import service_settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(330)]

SEED = int(os.environ.get("BRIDGE_FUZZ_SEED", "20261207"))
HOSTILE = 10_000
RSS_BOUND_MB = 200
STALL_S = 25.0  # nothing new on results or dead letters this long, with answers still awaited: a stall
QUIET_S = 8.0  # nothing new this long: is anything left unconsumed?
SETTLE_S = 150.0  # the most the test waits for the last answers once everything is sent
HEALTH_EVERY_S = 0.5
Owners = Mapping[bytes, Item]
RSS_EVERY_S = 0.2


# ---- watching the serve processes ------------------------------------------------------------------------


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None  # the process is gone: the liveness check reports it
    return None


def _healthz(port: int) -> str:
    """'' when GET /healthz answers 200, else what it answered."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return "" if response.status == 200 else f"status {response.status}"
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}: {exc.read()[:200]!r}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


class Watch:
    """Samples the RSS of the watched replicas, polls their /healthz, and notices any that exits."""

    def __init__(self) -> None:
        self.watched: dict[str, Replica] = {}
        self.rss_max: dict[str, float] = {}
        self.rss_samples = 0
        self.health_polls = 0
        self.health_failures: list[str] = []
        self.crashes: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, replica: Replica) -> None:
        self.watched[replica.name] = replica

    def remove(self, replica: Replica) -> None:
        self.watched.pop(replica.name, None)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sample()), asyncio.create_task(self._poll_health())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sample(self) -> None:
        while True:
            for name, replica in list(self.watched.items()):
                if not replica.alive():
                    self.crashes.append(
                        f"replica {name} exited ({replica.proc and replica.proc.returncode}):\n{replica.log_tail(30)}"
                    )
                    self.remove(replica)
                    continue
                assert replica.proc is not None
                rss = _rss_mb(replica.proc.pid)
                if rss is not None:
                    self.rss_samples += 1
                    self.rss_max[name] = max(rss, self.rss_max.get(name, 0.0))
            await asyncio.sleep(RSS_EVERY_S)  # a sampling period, not a synchronisation

    async def _poll_health(self) -> None:
        while True:
            for name, replica in list(self.watched.items()):
                answer = await asyncio.to_thread(_healthz, replica.port)
                if name not in self.watched:
                    continue  # left the watch while polled (being stopped): not its health
                self.health_polls += 1
                if answer:
                    self.health_failures.append(f"{time.strftime('%X')} replica {name}: {answer}")
            await asyncio.sleep(HEALTH_EVERY_S)


# ---- what comes back -------------------------------------------------------------------------------------


class Tail:
    """Reads the results and dead-letter topics (read_committed) from the beginning, as they grow."""

    def __init__(self, bootstrap: str, results: str, dead_letters: str) -> None:
        self.bootstrap = bootstrap
        self.topics = (results, dead_letters)
        self.letters: list[Letter] = []
        self.results: list[Result] = []
        self.last_progress = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in self.topics for p in await partitions_of(self.bootstrap, t)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self._take(record.topic, record.value)
        finally:
            await consumer.stop()

    def _take(self, topic: str, value: bytes | None) -> None:
        if value is None:
            return
        self.last_progress = time.monotonic()
        if topic == self.topics[0]:
            result = parse_result(value)
            if result is not None:
                self.results.append(result)
        else:
            letter = parse_letter(value)
            if letter is not None:
                self.letters.append(letter)


# ---- producing -------------------------------------------------------------------------------------------


async def produce(producer: AIOKafkaProducer, items: Sequence[Item], topics: dict[TopicRole, str]) -> None:
    """Send `items` in batches, as fast as the broker takes them, and note where each landed."""
    for start in range(0, len(items), 250):
        chunk = items[start : start + 250]
        futures = [
            await producer.send(
                topics[item.role],
                item.value,
                key=item.key,
                partition=item.partition,
                headers=list(item.headers) or None,
            )
            for item in chunk
        ]
        for item, meta in zip(chunk, await asyncio.gather(*futures), strict=True):
            item.placed = (meta.partition, meta.offset)


async def unconsumed(bootstrap: str, group: str, topics: Sequence[str]) -> dict[str, int]:
    """Records of `topics` past the group's committed offsets, per topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    out: dict[str, int] = dict.fromkeys(topics, 0)
    for tp in tps:
        meta = committed.get(tp)
        out[tp.topic] += max(0, ends[tp] - (meta.offset if meta is not None else 0))
    return out


async def settle(
    items: Sequence[Item], topics: dict[TopicRole, str], tail: Tail, watch: Watch, group: str, owners: Owners
) -> list[str]:
    """Wait until every awaited answer came, or a crash, the deadline, or nothing new for `STALL_S`. Then, a
    backlog the group has not committed is a stall; without one, the answers still awaited never come."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        verdict = judge(items, topics, tail.letters, tail.results, owners)
        waiting = sum(verdict.outstanding.values())
        if not waiting:
            return []
        if watch.crashes:
            return ["a replica crashed while answers were awaited"]
        quiet = time.monotonic() - tail.last_progress
        late = time.monotonic() > deadline
        if quiet > QUIET_S or late:
            backlog = await unconsumed(tail.bootstrap, group, [topics["suggestions"], topics["control"]])
            if not any(backlog.values()):
                return []  # everything consumed and committed: the final check names what never came
            if quiet > STALL_S or late:
                return [f"stall: {backlog} records not consumed, {waiting} answers awaited, quiet {quiet:.0f}s"]
        await asyncio.sleep(1.0)  # polling the tail's accumulation, not a synchronisation


# ---- the test --------------------------------------------------------------------------------------------


def _report(verdict: Verdict, items: Sequence[Item], watch: Watch, extra: dict[str, Any]) -> str:
    hostile = [i for i in items if i.hostile]
    valid = [i for i in items if not i.hostile]
    totals = {
        "seed": SEED,
        "records": len(items),
        "hostile": len(hostile),
        "valid_messages": len(valid),
        "valid_suggestions": sum(len(i.tags) for i in valid),
        "dead_letters": sum(c["dead_letters"] for c in verdict.counts.values()),
        "results": sum(c["results"] for c in verdict.counts.values()),
        "replayed": sum(c["replayed"] for c in verdict.counts.values()),
        "crashes": len(watch.crashes),
        "health_polls": watch.health_polls,
        "health_failures": len(watch.health_failures),
        "rss_samples": watch.rss_samples,
        "rss_max_mb": {k: round(v, 1) for k, v in sorted(watch.rss_max.items())},
        **extra,
    }
    lines = ["fuzz_hostile: " + " ".join(f"{k}={v}" for k, v in totals.items())]
    for cls, c in sorted(verdict.counts.items()):
        types = {k[3:]: n for k, n in sorted(c.items()) if k.startswith("dl:")}
        plain = " ".join(f"{k}={n}" for k, n in sorted(c.items()) if not k.startswith("dl:") and n)
        lines.append(f"  {cls}: {plain} dead_letter_types={types}")
    return "\n".join(lines)


async def test_hostile_records_never_crash_stall_or_bloat_the_bridge(kafka_bootstrap: str, tmp_path: Path) -> None:
    print(f"fuzz_hostile seed={SEED} (set BRIDGE_FUZZ_SEED to replay)")
    began = time.monotonic()
    marker = tmp_path / "forged-command-ran"
    grammar = Grammar(SEED, marker=marker)
    stream = grammar.stream(HOSTILE)
    forged = grammar.forged_ledger(PARTITIONS)
    items = grammar.items
    owners = run_owners(items)
    settings = service_settings(
        kafka_bootstrap,
        tmp_path,
        templates=templates(),
        limits=LIMITS,
        control={"token": TOKEN},
        max_message_bytes=MAX_MESSAGE_BYTES,
        max_in_flight=64,
        executor={"max_parallel": 4},
        batching={"linger_ms": 50, "max_configs": 64},
        shutdown_grace_s=10,
    )
    t = settings.topics
    topics: dict[TopicRole, str] = {"suggestions": t.suggestions, "control": t.control, "ledger": t.ledger}
    config = tmp_path / "bridge.yaml"  # written by service_settings
    first, second = Replica("a", config, tmp_path), Replica("b", config, tmp_path)
    watch, tail = Watch(), Tail(kafka_bootstrap, t.results, t.dead_letters)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_request_size=1_100_000
    )
    problems: list[str] = []
    exit_codes: dict[str, int | None] = {}
    try:
        first.start()
        await first.wait_ready()
        watch.add(first)
        watch.start()
        tail.start()
        await producer.start()
        third = len(stream) // 3
        await produce(producer, stream[:third], topics)
        await produce(producer, forged, topics)  # read by the reconciliations of the two rebalances below
        second.start()  # joins the group: a rebalance, partitions move, both replicas reconcile from the ledger
        await second.wait_ready(timeout=90)
        watch.add(second)
        await produce(producer, stream[third : 2 * third], topics)
        watch.remove(second)
        exit_codes["b"] = await second.terminate(timeout=60)  # leaves: a second rebalance
        await produce(producer, stream[2 * third :], topics)
        print(f"fuzz_hostile: {len(items)} records sent in {time.monotonic() - began:.1f}s")
        problems += await settle(items, topics, tail, watch, settings.kafka.group_id, owners)
        watch.remove(first)
        exit_codes["a"] = await first.terminate(timeout=60)
    finally:
        await producer.stop()
        await tail.stop()
        await watch.stop()
        for replica in (first, second):
            replica.kill_if_alive()

    letter_records, p1 = await read_to_end(kafka_bootstrap, t.dead_letters)
    result_records, p2 = await read_to_end(kafka_bootstrap, t.results)
    suggestion_records, p3 = await read_to_end(kafka_bootstrap, t.suggestions)
    problems += [p for p in (p1, p2, p3) if p]
    # The history checker's rules that need no execution records (the runs here are `true` and `sleep`).
    history = History.of(results=result_records, ledger=[], executions=[], wanted=set(), suggestions=suggestion_records)
    problems += run_id_problems(history.results) + order_problems(history.results, history.suggested_at)
    letters = [x for x in (parse_letter(r.value) for r in letter_records) if x is not None]
    results = [x for x in (parse_result(r.value) for r in result_records) if x is not None]
    verdict = judge(items, topics, letters, results, owners)
    if sum(verdict.outstanding.values()):
        never = {k: n for k, n in verdict.outstanding.items() if n}
        examples = {k: e for k, e in verdict.awaited.items() if e}
        problems.append(f"answers that never came, by class: {never}, e.g. {examples}")
    problems += verdict.problem_lines()
    problems += watch.crashes
    if watch.health_failures:
        problems.append(f"/healthz not 200 {len(watch.health_failures)}x: {watch.health_failures[:3]}")
    problems += [f"RSS of replica {k} reached {v:.0f} MB" for k, v in watch.rss_max.items() if v >= RSS_BOUND_MB]
    problems += [f"replica {k} exited {code} after SIGTERM (want 0)" for k, code in exit_codes.items() if code != 0]
    if marker.exists():
        problems.append("a forged or inline operation ran: the marker file exists")
    extra: dict[str, Any] = {"rebalances": 2, "marker": "present" if marker.exists() else "absent"}
    extra["duration_s"] = round(time.monotonic() - began, 1)
    print(_report(verdict, items, watch, extra))
    for p in problems:
        print(f"  problem: {p}")
    if problems:
        print(duplicate_report(result_records, tmp_path))
    assert not problems, "\n".join(problems)
