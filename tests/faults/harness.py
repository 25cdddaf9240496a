"""Fault-injection harness: `bridge serve` replicas as real processes, a study workload that lands on every
partition, and a checker that holds the results topic to the contract (CONTRACT.md section 3, Guarantees).

- `Cluster`: one config file (the test job as template `job`) and group for every replica of a test.
- `Replica`: one `bridge serve -c <config>` process with its own HTTP port, log file and workdir;
  `start()`, `await wait_ready()`, `kill9()`, `await terminate()`.
- `Study`: >= 200 suggestions with explicit ids over study names whose keys cover every partition, published
  in messages of 1-8 suggestions by a background task, spread over ~10 s, so faults land mid-study.
- `Executions`: what the test job recorded (`<record>/<name>.<attempt>.<pid>.json`), one file per execution.
- `Checker`: reads `bridge.results` with `read_committed` and asserts exactly one final result per suggestion,
  no duplicate, re-executions only of runs in flight at a fault, `attempt` = attempts dispatched for the run
  (the executions recorded, plus any a kill -9 cut before the job could record itself; see `attempt_problems`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from bridge.config.sections import TopicsSettings
from bridge.config.settings import BridgeSettings
from tests.engine_support import job_component
from tests.faults.history import Counts, Execution, Fault, History, problems_of
from tests.kafka_broker import _free_ports, broker_log_about, read_topic
from tests.polling import eventually
from tests.service.service_support import service_settings

PARTITIONS = 4  # the service creates its topics with 4 partitions
RESULT_SCHEMA = "bridge.result/v1"


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """The partition aiokafka's default partitioner (murmur2, as Java's) gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# ---- configuration and replicas ---------------------------------------------------------------------------


class Cluster:
    """The config shared by every replica of one test: fresh topics and group, the test job as `job`."""

    def __init__(
        self,
        bootstrap: str,
        root: Path,
        *,
        max_parallel: int = 4,
        concurrency: int = 4,
        shutdown_grace_s: float = 5,
        **overrides: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.root = root
        self.record = root / "record"
        self.record.mkdir(parents=True, exist_ok=True)
        topics: dict[str, str] = {}
        if "ledger" in TopicsSettings.model_fields:  # the durable run ledger, when the service has one
            topics["ledger"] = f"f{uuid.uuid4().hex[:10]}.ledger"
        self.settings: BridgeSettings = service_settings(
            bootstrap,
            root,
            executor={"max_parallel": max_parallel},
            shutdown_grace_s=shutdown_grace_s,
            templates={
                "job": {
                    "component": job_component(),
                    "matrix": {"kind": "mapping", "concurrency": concurrency},
                    "params": {"record": {"value": str(self.record)}},
                }
            },
            topics=topics,
            **overrides,
        )
        self.config = root / "bridge.yaml"  # written by service_settings
        self.replicas: list[Replica] = []

    def replica(self, name: str, *, bootstrap: str | None = None) -> Replica:
        """A new (not yet started) replica of this cluster; `bootstrap`: one that reaches the broker there (through
        the network fault tests' proxy) with a config file of its own."""
        config = self.config
        if bootstrap is not None:
            data = json.loads(self.config.read_text())
            data["kafka"]["bootstrap_servers"] = bootstrap
            config = self.root / f"bridge-{name}.yaml"
            config.write_text(json.dumps(data))
        replica = Replica(name, config, self.root)
        self.replicas.append(replica)
        return replica

    def kill_all(self) -> None:
        """Clean-up: SIGKILL every replica process this cluster started that is still alive."""
        for replica in self.replicas:
            replica.kill_if_alive()


class Replica:
    """One `bridge serve` process of the cluster's group: its own HTTP port, log file and workdir.

    The workdir stays the same across restarts of the same replica (a pod restarted on its volume); each start
    takes a fresh HTTP port outside the ephemeral range.
    """

    def __init__(self, name: str, config: Path, root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root
        self.workdir = root / f"work-{name}"
        self.log_path = root / f"replica-{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start `bridge serve` (returns at once; then `await wait_ready()`)."""
        assert not self.alive(), f"replica {self.name} is already running"
        (self.port,) = _free_ports(1)
        self.starts += 1
        if self._log is not None:
            self._log.close()
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== start {self.starts} of replica {self.name} at {time.time():.3f} =====\n".encode())
        self._log.flush()
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "--log-level",
                "info",
                "serve",
                "-c",
                str(self.config),
                "--http-port",
                str(self.port),
                "--workdir",
                str(self.workdir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """GET /readyz answers 200."""
        return self._probe("readyz")

    def healthy(self) -> bool:
        """GET /healthz answers 200."""
        return self._probe("healthz")

    def _probe(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    async def wait_ready(self, timeout: float = 60) -> float:
        """Poll /readyz until it answers 200; returns the seconds it took. Fails if the process exits."""
        began = time.monotonic()

        def ready() -> bool:
            if self.ready():
                return True
            if not self.alive():
                raise AssertionError(f"replica {self.name} exited before ready:\n{self.log_tail()}")
            return False

        try:
            what = f"replica {self.name} not ready"
            await eventually(ready, timeout=timeout, interval=0.1, in_thread=True, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await self.explain()}") from None
        return time.monotonic() - began

    async def explain(self) -> str:
        """What a stuck replica shows: where each of its tasks waits (SIGUSR1), its log, the logs of the other
        replicas beside it, the group as the broker describes it, and what the broker logged of the group."""
        config = json.loads(self.config.read_text())
        bootstrap, group = config["kafka"]["bootstrap_servers"], config["kafka"]["group_id"]
        if self.alive() and self.proc is not None:
            mark = self.log_path.stat().st_size
            self.proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(AssertionError):
                await eventually(lambda: b"tasks dumped" in self._log_since(mark), timeout=5, interval=0.2)
        parts = [f"----- replica {self.name} (tasks dumped at the end) -----\n{self.log_tail(80)}"]
        for other in sorted(self.root.glob("replica-*.log")):
            if other != self.log_path:
                tail = "\n".join(other.read_text(errors="replace").splitlines()[-40:])
                parts.append(f"----- {other.name} -----\n{tail}")
        described = await describe_group(bootstrap, group)
        parts.append(f"----- the group {group} as the broker describes it -----\n{described}")
        parts.append(f"----- the broker's log of {group} -----\n{broker_log_about(bootstrap, group)}")
        return "\n".join(parts)

    def pause(self) -> float:
        """SIGSTOP the bridge (its runs, in their own process groups, go on); returns when."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        return time.time()

    def resume(self) -> float:
        """SIGCONT the paused bridge; returns when."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        return time.time()

    def kill9(self) -> float:
        """SIGKILL the bridge (its runs die with it: PR_SET_PDEATHSIG); returns the time of the kill."""
        assert self.proc is not None and self.alive(), f"replica {self.name} is not running"
        at = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return at

    async def terminate(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait for the drain; returns the exit code (None: SIGKILLed after `timeout`)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    self.proc.wait()
                    return None
                await asyncio.sleep(0.1)
        return self.proc.returncode

    def kill_if_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def rebalances(self, since: float) -> list[float]:
        """When this replica was assigned partitions after `since` (its log's `partitions_assigned` lines): each
        a moment partitions may have moved, so runs in flight elsewhere may run again here."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "partitions_assigned" in line and line[:4].isdigit():
                at = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
                if at >= since:
                    out.append(at)
        return out

    def _log_since(self, offset: int) -> bytes:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def describe_group(bootstrap: str, group: str) -> str:
    """The group's state, and each member with the partitions the broker has it holding (or why not known)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        (response,) = await admin.describe_consumer_groups([group])
        lines = []
        for described in response.groups:
            error, _, state, _, protocol, members = described[:6]
            lines.append(f"state={state} protocol={protocol} error={error} members={len(members)}")
            for member_id, client_id, host, _, raw in members:
                held = ConsumerProtocolMemberAssignment.decode(raw).assignment if raw else []
                lines.append(f"  {member_id} ({client_id} at {host}): {sorted((t, sorted(p)) for t, p in held)}")
        return "\n".join(lines)
    except Exception as exc:  # a report of a failure: say what could not be learnt
        return f"(could not describe the group: {type(exc).__name__}: {exc})"
    finally:
        await admin.close()


EVENTS = (
    "partitions_assigned",
    "partitions_revoked",
    "partitions_handed_over",
    "partition_fenced",
    "partition_taken_from_dead_owner",
    "ledger_reconciled",
    "runs_resumed_from_ledger",
    "transaction_retry",
    "transaction_had_committed",
    "transaction_outcome_unknown",
    "publisher_closed_with_work_left",
    "publisher_stopped",
    "reconcile_",
    "bridge_draining",
)
"""Log events of a replica that say where runs could have moved or been published twice."""


def duplicate_report(results: Sequence[Any], root: Path, limit: int = 3) -> str:
    """For run ids with more than one final result (replayed copies aside): each result record (where it is, when,
    which operation and attempt), the log lines of every replica under `root` that name its run or operation, and
    each replica's rebalance and transaction events: what a failing exactly-once test needs to be understood."""
    finals: dict[str, list[Any]] = defaultdict(list)
    for record in results:
        with contextlib.suppress(ValueError, TypeError):
            body = json.loads(record.value)
            if isinstance(body, dict) and body.get("schema") == RESULT_SCHEMA and not body.get("replayed"):
                finals[str(body.get("run_id"))].append((record, body))
    duplicated = [(run_id, found) for run_id, found in finals.items() if len(found) > 1][:limit]
    if not duplicated:
        return ""
    logs = {p.name: p.read_text(errors="replace").splitlines() for p in sorted(root.glob("replica-*.log"))}
    out = []
    for run_id, found in duplicated:
        out.append(f"===== run {run_id}")
        names = {run_id}
        for record, body in found:
            names.add(str(body.get("operation_id")))
            when = datetime.fromtimestamp(record.timestamp / 1000).isoformat(timespec="milliseconds")
            out.append(
                f"  result at {record.partition}:{record.offset} {when}: status={body.get('status')}"
                f" attempt={body.get('attempt')} operation={body.get('operation_id')}"
                f" started={body.get('started_at')} finished={body.get('finished_at')}"
            )
        for name, lines in logs.items():
            mentions = [line[:400] for line in lines if any(n in line for n in names if n)]
            out.append(f"  {name}: {len(mentions)} lines name it\n    " + "\n    ".join(mentions[:40]))
    for name, lines in logs.items():
        events = [line[:300] for line in lines if any(e in line for e in EVENTS) or line.startswith("=====")]
        out.append(f"===== {name}: rebalance and transaction events\n  " + "\n  ".join(events[-80:]))
    return "\n".join(out)


# ---- the workload ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggested:
    study: str
    id: str  # also the job's `name`, so the execution records name the suggestion
    sleep: float


def study_names(prefix: str, per_partition: int, partitions: int = PARTITIONS) -> list[str]:
    """Study names whose keys hash to every partition, `per_partition` of them on each."""
    by_partition: dict[int, list[str]] = defaultdict(list)
    i = 0
    while any(len(by_partition[p]) < per_partition for p in range(partitions)):
        name = f"{prefix}-s{i}"
        bucket = by_partition[partition_of(name.encode(), partitions)]
        if len(bucket) < per_partition:
            bucket.append(name)
        i += 1
    return [n for p in range(partitions) for n in by_partition[p]]


class Study:
    """Suggestions over several studies covering every partition, published by a background task."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        seed: int,
        total: int = 208,
        per_partition: int = 2,
        publish_over_s: float = 10.0,
        sleep: tuple[float, float] = (0.1, 0.5),
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.publish_over_s = publish_over_s
        rng = random.Random(seed)
        prefix = f"f{uuid.UUID(int=rng.getrandbits(128)).hex[:6]}"
        self.studies = study_names(prefix, per_partition)
        self.suggestions: list[Suggested] = [
            Suggested(study, f"{study}-t{k:03d}", round(rng.uniform(*sleep), 3))
            for k in range(-(-total // len(self.studies)))
            for study in self.studies
        ][:total]
        by_study: dict[str, list[Suggested]] = defaultdict(list)
        for s in self.suggestions:
            by_study[s.study].append(s)
        chunks: dict[str, list[list[Suggested]]] = {}
        for study, items in by_study.items():
            chunks[study] = []
            rest = items
            while rest:
                n = rng.randint(1, 8)
                chunks[study].append(rest[:n])
                rest = rest[n:]
        # Interleave the studies' messages at random, each study's in its own order.
        self.messages: list[tuple[str, list[Suggested]]] = []
        while any(chunks.values()):
            study = rng.choice([s for s, c in chunks.items() if c])
            self.messages.append((study, chunks[study].pop(0)))
        self._gaps = [rng.uniform(0.5, 1.5) * publish_over_s / len(self.messages) for _ in self.messages]
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {(s.study, s.id) for s in self.suggestions}

    @staticmethod
    def body(study: str, items: Sequence[Suggested], iteration: int) -> bytes:
        return json.dumps(
            {
                "schema": "bridge.suggestion/v1",
                "study": study,
                "template": "job",
                "iteration": iteration,
                "suggestions": [{"id": s.id, "params": {"name": s.id, "sleep": s.sleep}} for s in items],
                "metadata": {"workload": "faults"},
            }
        ).encode()

    def start(self) -> None:
        """Start publishing in the background."""
        self.task = asyncio.create_task(self._publish())

    async def finished(self, timeout: float = 90) -> None:
        """Wait until every message is published."""
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), timeout)

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            partitions = await producer.partitions_for(self.topic)
            assert len(partitions) == PARTITIONS, f"{self.topic} has partitions {partitions}"
            assert {partition_of(s.encode()) for s in self.studies} == set(range(PARTITIONS))
            for iteration, ((study, items), gap) in enumerate(zip(self.messages, self._gaps, strict=True)):
                value = self.body(study, items, iteration)
                while True:  # the broker may be away (a fault): keep the message until it is taken
                    try:
                        await producer.send_and_wait(self.topic, value, key=study.encode())
                        break
                    except KafkaError:
                        await asyncio.sleep(0.5)
                self.sent += 1
                await asyncio.sleep(gap)  # pacing the optimizer, not synchronisation
        finally:
            await producer.stop()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


# ---- what the job recorded -------------------------------------------------------------------------------


class Executions:
    """The job's records: one file per execution, written at its start and again at its end."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def all(self) -> list[Execution]:
        out = []
        for path in self.record.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):  # written atomically; a vanished file is skipped
                d = json.loads(path.read_text())
                out.append(
                    Execution(d["name"], d["attempt"], d["start"], d.get("end"), d["env"].get("BRIDGE_OUTPUTS_DIR", ""))
                )
        return out

    def by_name(self) -> dict[str, list[Execution]]:
        out: dict[str, list[Execution]] = defaultdict(list)
        for e in self.all():
            out[e.name].append(e)
        for runs in out.values():
            runs.sort(key=lambda e: e.start)
        return out

    def running(self, since: float, workdir: Path | None = None) -> list[Execution]:
        """Executions started after `since` that have not ended (optionally: those of one replica)."""
        return [e for e in self.all() if e.start >= since and e.end is None and (workdir is None or e.ran_in(workdir))]

    async def wait_running(self, since: float, *, workdir: Path | None = None, timeout: float = 30) -> int:
        """Poll until some run is in flight (started after `since`, not ended); returns how many."""
        running: list[Execution] = []

        def some() -> bool:
            running[:] = self.running(since, workdir)
            return bool(running)

        await eventually(some, timeout=timeout, what=f"no run in flight (since {since:.3f})")
        return len(running)

    async def wait_ended(self, names: set[str], timeout: float = 30) -> int:
        """Poll until the executions of `names` running now have ended; returns how many ended (some may not)."""
        deadline = time.monotonic() + timeout
        while True:
            running = {e.name for e in self.all() if e.name in names and e.end is None}
            if not running or time.monotonic() > deadline:
                return len(names) - len(running)
            await asyncio.sleep(0.05)


# ---- the checker -----------------------------------------------------------------------------------------


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in described["partitions"])


async def read_to_end(bootstrap: str, topic: str, timeout: float = 30) -> tuple[list[ConsumerRecord[Any, Any]], str]:
    """Every committed record of `topic`, read with `read_committed` up to each partition's last stable offset.

    Returns the records and a problem ("" if none): an open transaction (last stable offset below the high
    watermark) once every replica has stopped, or the end not reached by the deadline.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        stable = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        records: list[ConsumerRecord[Any, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= stable[tp] for tp in tps):
                break
            if time.monotonic() > deadline:
                return records, f"{topic}: could not read to the end in {timeout}s: at {positions}, end {stable}"
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
        problem = ""
        uncommitted = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_uncommitted")
        await uncommitted.start()
        try:
            uncommitted.assign(tps)
            high = await uncommitted.end_offsets(tps)
        finally:
            await uncommitted.stop()
        open_ = {tp.partition: (stable[tp], high[tp]) for tp in tps if stable[tp] < high[tp]}
        if open_:
            problem = f"{topic}: open transactions after every replica stopped (stable, high) {open_}"
        return records, problem
    finally:
        await consumer.stop()


class Checker:
    """Holds what the bridge published to the contract, for one study."""

    def __init__(self, cluster: Cluster, study: Study, label: str) -> None:
        self.cluster = cluster
        self.settings = cluster.settings
        self.study = study
        self.label = label
        self.executions = Executions(cluster.record)

    @staticmethod
    def _final(records: Sequence[ConsumerRecord[Any, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in records:
            with contextlib.suppress(ValueError):
                m = json.loads(r.value)
                if m.get("schema") == RESULT_SCHEMA:
                    out.append(m)
        return out

    async def wait_for_results(self, timeout: float) -> set[tuple[str, str]]:
        """Read `bridge.results` (read_committed) until every suggestion has a final result or `timeout`;
        returns the suggestions still without one."""
        wanted = self.study.keys
        seen: set[tuple[str, str]] = set()

        def done(records: list[ConsumerRecord[Any, Any]]) -> bool:
            seen.update((m.get("study"), m.get("suggestion_id")) for m in self._final(records))
            return wanted <= seen

        with contextlib.suppress(TimeoutError):
            await read_topic(self.cluster.bootstrap, self.settings.topics.results, until=done, timeout_s=timeout)
        return wanted - seen

    async def settle(self, timeout: float = 90) -> list[str]:
        """Wait until the study is published and answered (or `timeout` passed), then SIGTERM every replica;
        returns the problems of those that do not drain and exit 0."""
        await self.study.finished()
        missing = await self.wait_for_results(timeout=timeout)
        print(f"study done at {time.time():.2f}; {len(missing)} suggestions without a result")
        return await stop_all(self.cluster.replicas)

    async def check(self, faults: Sequence[Fault], *, extra_problems: Sequence[str] = ()) -> Counts:
        """Read everything published (call once the replicas have stopped), hold the history to the contract
        (`history.problems_of`), print one line of counts, assert."""
        problems: list[str] = list(extra_problems)
        topics = self.settings.topics
        read = [await read_to_end(self.cluster.bootstrap, t) for t in (topics.results, topics.dead_letters)]
        read += [await read_to_end(self.cluster.bootstrap, t) for t in (topics.ledger, topics.suggestions)]
        (results, p1), (letters, p2), (ledger, p3), (suggestions, p4) = read
        problems += [p for p in (p1, p2, p3, p4) if p]
        history = History.of(
            results=results,
            ledger=ledger,
            executions=self.executions.all(),
            wanted=self.study.keys,
            suggestions=suggestions,
            dead_letters=len(letters),
        )
        c, found = problems_of(history, faults, all_succeeded=True)
        if letters:
            problems.append(f"{len(letters)} dead letters for a workload of valid suggestions")
        problems += found
        print(c.line(self.label, len(faults)))  # the closing note quotes this line
        for p in problems:
            print(f"  problem: {p}")
        if problems:
            print(duplicate_report(results, self.cluster.root))
        assert not problems, f"{c.line(self.label, len(faults))}\n" + "\n".join(f"- {p}" for p in problems)
        return c


async def stop_all(replicas: Sequence[Replica], timeout: float = 60) -> list[str]:
    """SIGTERM every running replica at once; problems for those that do not drain and exit 0."""
    alive = [r for r in replicas if r.alive()]
    codes = await asyncio.gather(*(r.terminate(timeout) for r in alive))
    return [
        f"replica {r.name} exited {code} after SIGTERM (want 0 after a clean drain):\n{r.log_tail(15)}"
        for r, code in zip(alive, codes, strict=True)
        if code != 0
    ]
