"""What `bridge serve` costs over a plain Kafka consume-and-produce loop, measured on one broker in the same run.

Rows, each measured `--repeat` times (the order reversed every other repeat, fresh topics and groups each time;
medians reported):

- `baseline_plain`: an aiokafka loop reads one-suggestion messages (group, manual commit), produces one output
  per message, waits for the acks and commits the offsets.
- `baseline_txn`: the same loop with a transactional producer: one transaction per consumed batch, holding the
  outputs and the offsets (`send_offsets_to_transaction`): the least the bridge's guarantee costs.
- `spawn_raw` / `spawn_executor`: the bridge's run command started N times by plain asyncio subprocesses, then
  by the bridge's `LocalExecutor`, `--max-parallel` at once: no Kafka; the ceiling of the bridge on this machine.
- `bridge`: `BridgeService` in this process, with a template whose run ends at once (`bash -c` appending its
  run id and start time to a file: bash's EPOCHREALTIME, no `date` fork), cache off so every suggestion really
  runs, `max_parallel` runs, `max_in_flight` 100000, linger 50 ms. N suggestions in messages of 1..8 over 8
  studies spread on every partition. Latency: the run's own start time minus the producer's send time of its
  suggestion, under that load, and at a low rate (`--latency-rate` one-suggestion messages/s), where it is
  split into its stages.

Every row's throughput is results over the time from the first publish to the last result seen by a
read_committed consumer; `cpu_ms_per_result` is this process's CPU time over the same window (the system under
test plus the small load driver), steadier than wall time on a shared machine. Every phase first sends one
warm-up message per study (producers started, groups joined, transactional ids initialised) and measures only
after those outputs were seen. Unless `--bootstrap` (or BRIDGE_KAFKA_BOOTSTRAP) names a broker, one is started
with deploy/kafka/kafka.sh in a temporary dir on free ports and stopped at the end. Output: JSON lines on
stdout and benchmarks/results/serve.json; with `--profile`, a cProfile of the bridge's last throughput phase in
benchmarks/results/serve.prof and its top functions on stderr.

    python benchmarks/serve_throughput.py [--messages 500] [--repeat 3] [--bootstrap HOST:PORT] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import logging
import os
import pstats
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import OffsetAndMetadata

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
BOOTSTRAP_ENV = "BRIDGE_KAFKA_BOOTSTRAP"
PARTITIONS = 4  # what the bridge creates its topics with
STUDIES_PER_PARTITION = 2
RESULT_SCHEMA = "bridge.result/v1"
TEMPLATE = "stamp"
LINGER_MS = 50
MAX_IN_FLIGHT = 100_000


def log(msg: str) -> None:
    print(f"serve_throughput: {msg}", file=sys.stderr, flush=True)


# ---- the broker --------------------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Free ports on 127.0.0.1 outside the ephemeral range (where clients' own sockets could take them)."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    pool = list(range(20000, low)) if low > 21000 else list(range(high + 1, 65536))
    random.shuffle(pool)
    ports: list[int] = []
    for port in pool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports outside the ephemeral range {low}-{high}")


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The broker to measure on: the one given, else a fresh one of our own, stopped at the end."""
    if bootstrap:
        yield bootstrap
        return
    port, cport = _free_ports(2)
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as run_dir:
        env = {**os.environ, "KAFKA_RUN_DIR": run_dir, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport)}
        began = time.monotonic()
        done = subprocess.run(["bash", str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh up failed:\n{done.stdout}{done.stderr}")
        log(f"broker up on 127.0.0.1:{port} in {time.monotonic() - began:.1f} s")
        try:
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run(["bash", str(KAFKA_SH), "down"], env=env, capture_output=True, check=False)


async def create_topics(bootstrap: str, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics])
        deadline = time.monotonic() + 30
        while True:  # until every partition has a leader
            described = await admin.describe_topics(list(topics))
            if all(
                d["error_code"] == 0 and sum(p["leader"] >= 0 for p in d["partitions"]) == PARTITIONS for d in described
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {topics} have no leaders")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(list(topics))
    finally:
        await admin.close()


# ---- load: messages, publishing, watching ------------------------------------------------------------------


def studies() -> list[str]:
    """Study names whose keys land on every partition, STUDIES_PER_PARTITION each."""
    by_partition: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    everything = list(range(PARTITIONS))
    n = 0
    while any(len(v) < STUDIES_PER_PARTITION for v in by_partition.values()):
        name = f"study-{n:03d}"
        part = DefaultPartitioner()(name.encode(), everything, everything)
        if len(by_partition[part]) < STUDIES_PER_PARTITION:
            by_partition[part].append(name)
        n += 1
    return [s for p in sorted(by_partition) for s in by_partition[p]]


class Message:
    """One suggestion message: its key, bytes and suggestion ids."""

    def __init__(self, study: str, ids: list[str], iteration: int) -> None:
        self.study = study
        self.ids = ids
        body = {
            "schema": "bridge.suggestion/v1",
            "study": study,
            "template": TEMPLATE,
            "iteration": iteration,
            "suggestions": [{"id": i, "params": {"x": int(i.rsplit("-", 1)[1])}} for i in ids],
            "metadata": {"optimizer": "bench"},
        }
        self.value = json.dumps(body).encode()


def messages(tag: str, suggestions: int, sizes: tuple[int, int], rng: random.Random) -> list[Message]:
    """`suggestions` suggestions in messages of `sizes` (inclusive) suggestions, round-robin over the studies."""
    names = studies()
    out: list[Message] = []
    k = 0
    while k < suggestions:
        size = min(rng.randint(*sizes), suggestions - k)
        out.append(Message(names[len(out) % len(names)], [f"{tag}-{j}" for j in range(k, k + size)], len(out)))
        k += size
    return out


async def publish(
    producer: AIOKafkaProducer, topic: str, batch: Sequence[Message], rate: float | None = None
) -> dict[str, float]:
    """Send each message (at `rate` messages/s, or at once); returns each suggestion id's send time."""
    sent: dict[str, float] = {}
    futures = []
    began = time.time()
    for n, msg in enumerate(batch):
        if rate is not None:
            await asyncio.sleep(max(0.0, began + n / rate - time.time()))
        at = time.time()
        futures.append(await producer.send(topic, msg.value, key=msg.study.encode()))
        for i in msg.ids:
            sent[i] = at
    await asyncio.gather(*futures)
    return sent


class Watcher:
    """A read_committed reader of an output topic from its beginning: each result and when it was seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,
        )
        self._topic = topic
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tps = [TopicPartition(self._topic, p) for p in range(PARTITIONS)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for r in records:
                    data = json.loads(r.value)
                    if data.get("schema") == RESULT_SCHEMA:
                        self.seen.append((now, data))
            if batches:
                self._changed.set()

    async def until(self, count: int, timeout_s: float = 180) -> float:
        """Wait until `count` results were seen; returns when the last of them was."""
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.seen)} of {count} results seen on {self._topic}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1)
        return self.seen[count - 1][0]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


@contextlib.asynccontextmanager
async def driver(bootstrap: str, results_topic: str) -> AsyncIterator[tuple[AIOKafkaProducer, Watcher]]:
    """The load generator's producer and the results watcher."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await producer.start()
    watcher = Watcher(bootstrap, results_topic)
    await watcher.start()
    try:
        yield producer, watcher
    finally:
        await watcher.stop()
        await producer.stop()


@dataclasses.dataclass
class Measured:
    seconds: float  # first publish -> last result seen
    warm_s: float  # the warm-up: first publish -> its last output seen (partitions' first records, cold)
    cpu_s: float  # this process's CPU time meanwhile
    sent: dict[str, float]  # suggestion id -> send time


async def warm_and_measure(
    producer: AIOKafkaProducer, watcher: Watcher, topic: str, tag: str, load: list[Message]
) -> Measured:
    """One warm-up message per study, then `load` at once, measured until its last result is seen."""
    warm = [Message(s, [f"{tag}warm-{n}"], 0) for n, s in enumerate(studies())]
    warm_sent = await publish(producer, topic, warm)
    warm_s = await watcher.until(len(warm)) - min(warm_sent.values())
    total = sum(len(m.ids) for m in load)
    cpu = time.process_time()
    sent = await publish(producer, topic, load)
    last = await watcher.until(len(warm) + total)
    return Measured(last - min(sent.values()), warm_s, time.process_time() - cpu, sent)


# ---- the baselines -----------------------------------------------------------------------------------------


def _output(value: bytes) -> bytes:
    """What the baseline loop 'computes' per message: a result record of about the bridge's size."""
    msg = json.loads(value)
    s = msg["suggestions"][0]
    return json.dumps(
        {
            "schema": RESULT_SCHEMA,
            "study": msg["study"],
            "template": msg["template"],
            "operation_id": "0" * 32,
            "run_id": uuid.uuid4().hex,
            "suggestion_id": s["id"],
            "iteration": msg.get("iteration"),
            "params": s["params"],
            "status": "succeeded",
            "outputs": {},
            "attempt": 1,
            "cached": False,
            "started_at": None,
            "finished_at": None,
            "duration_s": 0.0,
            "error": None,
            "metadata": msg["metadata"],
        }
    ).encode()


async def _loop(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, out: str, group: str, transactional: bool
) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=500)
        if not batches:
            continue
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        records = [r for rs in batches.values() for r in rs]
        if transactional:
            async with producer.transaction():
                futures = [await producer.send(out, _output(r.value), key=r.key) for r in records]
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()}, group
                )
                await asyncio.gather(*futures)
        else:
            futures = [await producer.send(out, _output(r.value), key=r.key) for r in records]
            await asyncio.gather(*futures)
            await consumer.commit(offsets)


async def baseline(bootstrap: str, n: int, *, transactional: bool, seed: int) -> dict[str, Any]:
    """The consume-produce loop on `n` one-suggestion messages, one output each."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    src, out, group = f"{prefix}.in", f"{prefix}.out", f"{prefix}-group"
    await create_topics(bootstrap, [src, out])
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        transactional_id=f"{prefix}-txn" if transactional else None,
    )
    await consumer.start()
    await producer.start()
    task = asyncio.create_task(_loop(consumer, producer, out, group, transactional))
    try:
        async with driver(bootstrap, out) as (load, watcher):
            measured = await warm_and_measure(load, watcher, src, "b", messages("b", n, (1, 1), random.Random(seed)))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
        await delete_topics(bootstrap, [src, out])
    return {"results": n, "seconds": measured.seconds, "cpu_s": measured.cpu_s}


# ---- spawning alone ----------------------------------------------------------------------------------------


def stamp_argv(stamps: Path) -> list[str]:
    """The run: append its run id and start time (bash's EPOCHREALTIME: no fork) to `stamps`."""
    return ["/bin/bash", "-c", f'echo "$BRIDGE_RUN_ID $EPOCHREALTIME" >> {shlex.quote(str(stamps))}']


async def _spawned(n: int, parallel: int, one: Callable[[int], Coroutine[Any, Any, None]]) -> dict[str, Any]:
    slots = asyncio.Semaphore(parallel)

    async def limited(i: int) -> None:
        async with slots:
            await one(i)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(limited(i) for i in range(n)))
    return {"results": n, "seconds": time.perf_counter() - began, "cpu_s": time.process_time() - cpu}


async def spawn_raw(n: int, parallel: int, tmp: Path) -> dict[str, Any]:
    """The run command started by asyncio itself, output discarded."""
    argv = stamp_argv(tmp / "raw.stamps")

    async def one(i: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "BRIDGE_RUN_ID": f"r{i}"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if await proc.wait() != 0:
            raise RuntimeError(f"{argv} failed")

    return await _spawned(n, parallel, one)


async def spawn_executor(n: int, parallel: int, tmp: Path) -> dict[str, Any]:
    """The run command started by the bridge's LocalExecutor (log files, metrics file, process group...)."""
    from bridge.executors.local import LocalExecutor, ProcessRequest

    executor = LocalExecutor(max_parallel=parallel)
    argv = stamp_argv(tmp / "exec.stamps")
    root = tmp / f"exec-{uuid.uuid4().hex[:6]}"

    async def one(i: int) -> None:
        run_dir = root / f"r{i}"
        request = ProcessRequest(
            run_id=f"r{i}",
            attempt=1,
            argv=argv,
            env={"BRIDGE_RUN_ID": f"r{i}"},
            cwd=tmp,
            attempt_dir=run_dir / "attempts" / "1",
            outputs_dir=run_dir / "outputs",
        )
        handle = await executor.spawn(request, lambda _record: None)
        if (await handle.wait()).exit_code != 0:
            raise RuntimeError(f"{argv} failed")

    return await _spawned(n, parallel, one)


# ---- the bridge --------------------------------------------------------------------------------------------


def bridge_settings(bootstrap: str, root: Path, stamps: Path, parallel: int, linger_ms: int = LINGER_MS) -> Any:
    from bridge.config.settings import load_settings

    prefix = f"s{uuid.uuid4().hex[:10]}"
    component = {
        "kind": "component",
        "name": TEMPLATE,
        "inputs": [{"name": "x", "type": "int"}],
        "run": {"kind": "job", "container": {"image": "bash", "command": stamp_argv(stamps)}},
    }
    data = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-group"},
        "topics": {
            name: f"{prefix}.{name}"
            for name in ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
        },
        "batching": {"linger_ms": linger_ms, "max_configs": 64},
        "executor": {"kind": "local", "max_parallel": parallel},
        "max_in_flight": MAX_IN_FLIGHT,
        "shutdown_grace_s": 10,
        "http": {"host": "127.0.0.1", "port": 0},
        "workdir": str(root / "work"),
        "templates": {
            TEMPLATE: {
                "component": component,
                "matrix": {"kind": "mapping", "concurrency": parallel},
                "cache": {"disable": True},
            }
        },
    }
    path = root / "bridge.yaml"
    path.write_text(json.dumps(data))
    return load_settings(path)


@contextlib.asynccontextmanager
async def serving(settings: Any, *, exactly_once: bool = True) -> AsyncIterator[Any]:
    from bridge.app import build_service

    # `exactly_once=False` is an argument no configuration reaches: the same service without ledger records,
    # transactions or committed offsets, to measure what the guarantees cost.
    service = build_service(settings, connect_timeout_s=30, exactly_once=exactly_once)
    task = asyncio.create_task(service.run())
    deadline = time.monotonic() + 60
    while not service.health.ready()[0]:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge never became ready")
        await asyncio.sleep(0.05)
    try:
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=60)


def _read_stamps(path: Path) -> dict[str, float]:
    """run id -> when its (first) process started."""
    starts: dict[str, float] = {}
    for line in path.read_text().splitlines():
        run_id, at = line.split()
        starts[run_id] = min(starts.get(run_id, float("inf")), float(at))
    return starts


def _stages(
    seen: list[tuple[float, dict[str, Any]]], sent: dict[str, float], starts: dict[str, float]
) -> dict[str, list[float]]:
    """Per suggestion of `sent`, in ms: publish -> run started and -> result seen, and the stages between:
    publish -> dispatched (the scheduler's `started_at`: consumed, lingered, given a slot) -> process running
    (the run's own stamp: rendered, work dirs made, spawned) -> finished (the result's `finished_at`: exit
    seen) -> result seen (published in a transaction, visible to read_committed)."""
    out: dict[str, list[float]] = {
        k: []
        for k in ("to_start", "to_result", "to_dispatch", "dispatch_to_start", "start_to_finish", "finish_to_seen")
    }
    for seen_at, data in seen:
        sid, run_id = data.get("suggestion_id"), data.get("run_id")
        if sid not in sent or run_id not in starts:
            continue
        published, started = sent[sid], starts[run_id]
        dispatched = datetime.fromisoformat(data["started_at"]).timestamp()
        finished = datetime.fromisoformat(data["finished_at"]).timestamp()
        for key, value in (
            ("to_start", started - published),
            ("to_result", seen_at - published),
            ("to_dispatch", dispatched - published),
            ("dispatch_to_start", started - dispatched),
            ("start_to_finish", finished - started),
            ("finish_to_seen", seen_at - finished),
        ):
            out[key].append(value * 1000)
    return out


async def bridge_unguarded(bootstrap: str, n: int, args: argparse.Namespace, tmp: Path, seed: int) -> dict[str, Any]:
    """The same service and load as `bridge`, with the ledger, transactions and offsets switched off."""
    root = Path(tempfile.mkdtemp(dir=tmp, prefix="unguarded-"))
    settings = bridge_settings(bootstrap, root, root / "stamps", args.max_parallel)
    topics = settings.topics
    load = messages("t", n, (1, 8), random.Random(seed))
    await create_topics(bootstrap, list(topics.model_dump().values()))
    try:
        async with serving(settings, exactly_once=False), driver(bootstrap, topics.results) as (producer, watcher):
            measured = await warm_and_measure(producer, watcher, topics.suggestions, "t", load)
    finally:
        await delete_topics(bootstrap, list(topics.model_dump().values()))
    return {"results": n, "seconds": measured.seconds, "cpu_s": measured.cpu_s}


async def bridge_linger0(bootstrap: str, args: argparse.Namespace, tmp: Path, seed: int) -> dict[str, Any]:
    """P2: `linger_ms: 0`, one-suggestion messages at each `--p2-rates` rate: publish -> run start (the run's own
    stamp) per suggestion, by rate."""
    root = Path(tempfile.mkdtemp(dir=tmp, prefix="linger0-"))
    stamps = root / "stamps"
    settings = bridge_settings(bootstrap, root, stamps, args.max_parallel, linger_ms=0)
    topics = settings.topics
    rng = random.Random(seed)
    by_rate: dict[float, dict[str, float]] = {}
    await create_topics(bootstrap, list(topics.model_dump().values()))
    try:
        async with serving(settings), driver(bootstrap, topics.results) as (producer, watcher):
            warm = [Message(s, [f"w-{n}"], 0) for n, s in enumerate(studies())]
            await publish(producer, topics.suggestions, warm)
            await watcher.until(len(warm))
            for rate in args.p2_rates:
                load = messages(f"r{rate:g}", args.p2_messages, (1, 1), rng)
                before = len(watcher.seen)
                by_rate[rate] = await publish(producer, topics.suggestions, load, rate=rate)
                await watcher.until(before + args.p2_messages)
            seen = watcher.seen
    finally:
        await delete_topics(bootstrap, list(topics.model_dump().values()))
    starts = _read_stamps(stamps)
    return {
        "results": 0,
        "seconds": 1.0,
        "by_rate": {rate: _stages(seen, sent, starts) for rate, sent in by_rate.items()},
    }


async def bridge(
    bootstrap: str, n: int, args: argparse.Namespace, tmp: Path, seed: int, profile: cProfile.Profile | None
) -> dict[str, Any]:
    """The service on N suggestions at once, then `--latency-messages` at `--latency-rate`."""
    root = Path(tempfile.mkdtemp(dir=tmp, prefix="bridge-"))
    stamps = root / "stamps"
    settings = bridge_settings(bootstrap, root, stamps, args.max_parallel)
    topics = settings.topics
    rng = random.Random(seed)
    load = messages("t", n, (1, 8), rng)
    slow = messages("l", args.latency_messages, (1, 1), rng)
    # Made here, with leaders, before the bridge starts: a topic the bridge creates itself can be missing from
    # its consumer's first metadata, and aiokafka then waits metadata_max_age_ms (5 min) before looking again.
    await create_topics(bootstrap, list(topics.model_dump().values()))
    try:
        async with serving(settings), driver(bootstrap, topics.results) as (producer, watcher):
            if profile is not None:
                profile.enable()
            measured = await warm_and_measure(producer, watcher, topics.suggestions, "t", load)
            if profile is not None:
                profile.disable()
            before = len(watcher.seen)
            await asyncio.sleep(0.5)
            sent_slow = await publish(producer, topics.suggestions, slow, rate=args.latency_rate)
            await watcher.until(before + args.latency_messages)
    finally:
        await delete_topics(bootstrap, list(topics.model_dump().values()))
    starts = _read_stamps(stamps)
    return {
        "results": n,
        "messages": len(load),
        "seconds": measured.seconds,
        "cpu_s": measured.cpu_s,
        "warm_s": measured.warm_s,
        "under_load": _stages(watcher.seen, measured.sent, starts),
        "low_rate": _stages(watcher.seen, sent_slow, starts),
    }


# ---- the report --------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))], 1)


def summarize(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = statistics.median(s["seconds"] for s in samples)
    cpu = statistics.median(s["cpu_s"] for s in samples)
    n = samples[0]["results"]
    return {
        "row": name,
        "results": n,
        "repeat": len(samples),
        "seconds": round(seconds, 3),
        "throughput_per_s": round(n / seconds, 1),
        "ms_per_result": round(1000 * seconds / n, 2),
        "cpu_ms_per_result": round(1000 * cpu / n, 2),
        "throughput_samples": [round(n / s["seconds"], 1) for s in samples],
    }


def p2_report(samples: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """P2: publish -> run start at each rate with `linger_ms: 0`, pooled over the repeats, with its stages."""
    out: dict[str, Any] = {"row": "p2_latency", "linger_ms": 0, "messages_per_rate": args.p2_messages}
    for rate in args.p2_rates:
        pooled = {k: [x for s in samples for x in s["by_rate"][rate][k]] for k in samples[0]["by_rate"][rate]}
        out[f"at_{rate:g}_per_s"] = {
            "publish_to_run_start_ms": {"p50": pct(pooled["to_start"], 50), "p99": pct(pooled["to_start"], 99)},
            "stages_ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in pooled.items() if k != "to_start"},
            "samples": len(pooled["to_start"]),
        }
    return out


def latency_report(samples: list[dict[str, Any]], rate: float, throughput: float) -> dict[str, Any]:
    """p50/p99 in ms over every repeat's suggestions."""

    def p(phase: str, key: str) -> dict[str, float | None]:
        pooled = [x for s in samples for x in s[phase][key]]
        return {"p50": pct(pooled, 50), "p99": pct(pooled, 99)}

    return {
        "publish_to_run_start_low_rate_ms": p("low_rate", "to_start"),
        "publish_to_run_start_under_load_ms": p("under_load", "to_start"),
        "publish_to_result_low_rate_ms": p("low_rate", "to_result"),
        "publish_to_result_under_load_ms": p("under_load", "to_result"),
        "low_rate_stages_ms": {
            k: p("low_rate", k) for k in ("to_dispatch", "dispatch_to_start", "start_to_finish", "finish_to_seen")
        },
        "low_rate_per_s": rate,
        "low_rate_utilisation": round(rate / throughput, 2),  # of the bridge's measured throughput
        "low_rate_p50_per_repeat_ms": [pct(s["low_rate"]["to_start"], 50) for s in samples],
        "samples_low_rate": sum(len(s["low_rate"]["to_start"]) for s in samples),
        "samples_under_load": sum(len(s["under_load"]["to_start"]) for s in samples),
    }


async def bench(bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    raw: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "baseline_plain",
            "baseline_txn",
            "spawn_raw",
            "spawn_executor",
            "bridge",
            "bridge_unguarded",
            "bridge_linger0",
        )
    }
    profile = cProfile.Profile() if args.profile else None
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as d:
        tmp = Path(d)
        for r in range(args.repeat):
            seed = 1000 + r
            last = r == args.repeat - 1
            phases: list[tuple[str, Callable[[], Coroutine[Any, Any, dict[str, Any]]]]] = [
                (
                    "baseline_plain",
                    partial(baseline, bootstrap, args.baseline_messages, transactional=False, seed=seed),
                ),
                ("baseline_txn", partial(baseline, bootstrap, args.baseline_messages, transactional=True, seed=seed)),
                ("spawn_raw", partial(spawn_raw, args.messages, args.max_parallel, tmp)),
                ("spawn_executor", partial(spawn_executor, args.messages, args.max_parallel, tmp)),
                ("bridge", partial(bridge, bootstrap, args.messages, args, tmp, seed, profile if last else None)),
                ("bridge_unguarded", partial(bridge_unguarded, bootstrap, args.messages, args, tmp, seed)),
                ("bridge_linger0", partial(bridge_linger0, bootstrap, args, tmp, seed)),
            ]
            for name, phase in phases if r % 2 == 0 else reversed(phases):
                sample = await phase()
                raw[name].append(sample)
                if sample["results"]:
                    log(f"repeat {r + 1}/{args.repeat} {name}: {sample['results'] / sample['seconds']:.1f} results/s")
            load.append(os.getloadavg()[0])
    linger0 = raw.pop("bridge_linger0")
    rows = {k: summarize(k, v) for k, v in raw.items()}
    b = rows["bridge"]
    for k in ("baseline_plain", "baseline_txn", "spawn_raw", "spawn_executor", "bridge_unguarded"):
        b[f"ratio_vs_{k}"] = round(b["throughput_per_s"] / rows[k]["throughput_per_s"], 3)
    # What the guarantees cost: the share of the unguarded throughput that exactly-once takes away.
    b["guarantees_cost"] = round(1 - b["ratio_vs_bridge_unguarded"], 3)
    rows["p2_latency"] = p2_report(linger0, args)
    # How close each rate is to what the bridge sustained in this same run: near 1, the figure is queueing.
    for rate in args.p2_rates:
        rows["p2_latency"][f"at_{rate:g}_per_s"]["utilisation"] = round(rate / b["throughput_per_s"], 2)
    b["messages"] = raw["bridge"][0]["messages"]
    # One suggestion per study on a fresh service: each partition's first record starts its transactional producer.
    b["cold_first_results_s"] = round(statistics.median(s["warm_s"] for s in raw["bridge"]), 3)
    b["latency"] = latency_report(raw["bridge"], args.latency_rate, b["throughput_per_s"])
    b["config"] = {
        "max_parallel": args.max_parallel,
        "linger_ms": LINGER_MS,
        "max_in_flight": MAX_IN_FLIGHT,
        "suggestions_per_message": "1..8",
        "studies": len(studies()),
        "partitions": PARTITIONS,
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(x, 1) for x in load],  # at start and after each repeat: others sharing the machine
    }
    if profile is not None:
        out = ROOT / "benchmarks" / "results" / "serve.prof"
        out.parent.mkdir(exist_ok=True)
        profile.dump_stats(out)
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=sys.stderr)
    return list(rows.values())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500, help="suggestions (runs) in the bridge's throughput phase")
    p.add_argument("--baseline-messages", type=int, default=5000, help="messages per baseline (~50x faster than runs)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bootstrap", default=os.environ.get(BOOTSTRAP_ENV), help="use this broker, start none")
    p.add_argument("--max-parallel", type=int, default=4)
    p.add_argument("--latency-rate", type=float, default=20.0, help="one-suggestion messages/s, latency phase")
    p.add_argument("--latency-messages", type=int, default=100)
    p.add_argument("--profile", action="store_true", help="cProfile the bridge's last throughput phase")
    p.add_argument("--p2-rates", type=float, nargs="+", default=[100.0, 500.0], help="P2 rates, messages/s")
    p.add_argument("--p2-messages", type=int, default=300, help="one-suggestion messages per P2 rate")
    args = p.parse_args()
    from bridge.logs import configure

    configure("warning")  # the service logs on stderr: stdout is this benchmark's JSON lines
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # coordinator/leader retries while topics are new
    began = time.monotonic()
    with broker(args.bootstrap) as bootstrap:
        rows = asyncio.run(bench(bootstrap, args))
    for row in rows:
        print(json.dumps(row))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "serve.json").write_text(json.dumps(rows, indent=2) + "\n")
    log(f"done in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
