"""How much memory `bridge serve` takes with a backlog far larger than `max_in_flight`, through a forced rebalance.

The target (issue 7, "Memory is bounded by runs, not records"): every `bridge serve` process stays at or below
200 MB of resident memory with a backlog of 1,000,000 suggestions, mostly in messages of 1024 suggestions,
while a second replica joins and leaves and the first is killed with SIGKILL and restarted (so reconcile meets
many unfinished runs in the ledger).

What it does, on its own broker (deploy/kafka/kafka.sh, loopback, free ports) unless `--bootstrap` names one:

1. creates the bridge's topics as `bridge serve` does, then publishes the whole backlog BEFORE any replica
   starts: `--suggestions` suggestions over 8 studies covering the 4 partitions, ~70 % of the messages small
   (1-8 suggestions) and the rest of 1024 suggestions, so almost every suggestion is in a big message;
2. starts replica A (`python -m bridge serve`, a real process, `max_in_flight` `--max-in-flight`, a template
   whose run is `/bin/true`, cache off) and, for `--seconds` from then on:
   - samples every serve process's VmRSS and VmHWM from /proc every 200 ms, and its `/metrics`
     (`bridge_runs_in_flight`) and `/healthz` every second;
   - at 25 % a replica B joins the group, works for a while (15 %, at least 10 s) and leaves (SIGTERM);
   - at 60 % (or once B has left) replica A is killed with SIGKILL and started again on the same workdir;
3. counts the results a read_committed consumer sees meanwhile, stops what it started and prints a table.

It does not process the whole backlog (at ~70 runs/s on 2 vCPUs that would take hours); what it measures is the
memory of a bridge facing it. Peak RSS is each process's VmHWM (the kernel's own high-water mark, so a spike
between two samples is not missed), the bridge process alone (its runs are `/bin/true`). Runs in flight are the
peak of the gauge and of the `in_flight` fields of the JSON log (the gauge cannot be read while the event loop is
blocked). PASS: every serve process peaked at or below `--target-mb`, results were published, nothing aborted.
A process past `--abort-rss-mb` is killed at once and the run ends as FAIL (the machine is shared).

Output: the table on stderr, one JSON line on stdout and benchmarks/results/memory.json.

    python benchmarks/memory_backlog.py [--suggestions 1000000] [--seconds 240] [--max-in-flight 256]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from serve_throughput import broker, studies

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP_ENV = "BRIDGE_KAFKA_BOOTSTRAP"
TEMPLATE = "noop"
BIG = 1024  # suggestions in a big message: the most one message may hold
SMALL = (1, 8)
SMALL_SHARE = 0.7  # of the messages; a small share of the suggestions
RSS_EVERY_S = 0.2
HTTP_EVERY_S = 1.0
HTTP_TIMEOUT_S = 2.0
RESULT_SCHEMA = "bridge.result/v1"


def log(msg: str) -> None:
    print(f"memory_backlog: {msg}", file=sys.stderr, flush=True)


# ---- the bridge's config and topics ------------------------------------------------------------------------


def write_config(bootstrap: str, root: Path, max_in_flight: int, parallel: int) -> Path:
    """The config every replica reads: fresh topics and group, one template whose run ends at once."""
    prefix = f"m{os.urandom(5).hex()}"
    component = {
        "kind": "component",
        "name": TEMPLATE,
        "inputs": [{"name": "x", "type": "int"}],
        "run": {"kind": "job", "container": {"image": "busybox", "command": ["/bin/true", "{{ x }}"]}},
    }
    data = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-group"},
        "topics": {
            name: f"{prefix}.{name}"
            for name in ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
        },
        "executor": {"kind": "local", "max_parallel": parallel},
        "max_in_flight": max_in_flight,
        "shutdown_grace_s": 5,  # B leaves and A stops within the benchmark's bounds
        "http": {"host": "127.0.0.1", "port": 0},
        "templates": {
            TEMPLATE: {
                "component": component,
                "matrix": {"kind": "mapping", "concurrency": parallel},
                "cache": {"disable": True},  # every suggestion really runs
            },
        },
    }
    path = root / "bridge.yaml"
    path.write_text(json.dumps(data))
    return path


async def create_topics(config: Path) -> Any:
    """The bridge's topics made exactly as `bridge serve` makes them (the ledger compacted); its settings."""
    from bridge.config.settings import load_settings
    from bridge.kafka.connection import ensure_topics

    settings = load_settings(config)
    await ensure_topics(
        settings.kafka,
        settings.topics,
        partitions=settings.kafka.topic_partitions,
        give_up_after_s=60,
        compacted=[settings.topics.ledger],
    )
    return settings


# ---- the backlog -------------------------------------------------------------------------------------------


def backlog(total: int, seed: int) -> Iterator[tuple[str, bytes, int]]:
    """`(study, value, suggestions)` per message until `total` suggestions: studies round-robin, each message
    small (1-8 suggestions) with probability SMALL_SHARE, else BIG; ids and params unique over the backlog."""
    rng = random.Random(seed)
    names = studies()
    iterations = dict.fromkeys(names, 0)
    made = 0
    n = 0
    while made < total:
        study = names[n % len(names)]
        size = min(rng.randint(*SMALL) if rng.random() < SMALL_SHARE else BIG, total - made)
        body = {
            "schema": "bridge.suggestion/v1",
            "study": study,
            "template": TEMPLATE,
            "iteration": iterations[study],
            "suggestions": [{"id": f"{study}-{k:07d}", "params": {"x": k}} for k in range(made, made + size)],
        }
        yield study, json.dumps(body, separators=(",", ":")).encode(), size
        iterations[study] += 1
        made += size
        n += 1


async def produce_backlog(bootstrap: str, topic: str, total: int, seed: int) -> dict[str, Any]:
    """Publish the whole backlog and wait for every ack; what was sent and how long it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    began = time.monotonic()
    messages = big = size = 0
    try:
        pending = []
        for study, value, count in backlog(total, seed):
            pending.append(await producer.send(topic, value, key=study.encode()))
            messages += 1
            big += count == BIG
            size += len(value)
            if len(pending) >= 500:  # keep the driver's own memory small whatever the backlog
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return {
        "suggestions": total,
        "messages": messages,
        "messages_of_1024": big,
        "mb": round(size / 1e6, 1),
        "seconds": round(time.monotonic() - began, 1),
    }


# ---- serve processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A free port on 127.0.0.1 above the ephemeral range, where no client socket of ours can take it first."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    pool = list(range(20000, low)) if low > 21000 else list(range(high + 1, 65536))
    for port in random.sample(pool, len(pool)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free port outside the ephemeral range")


@dataclasses.dataclass
class Observed:
    """What was seen of one serve process."""

    name: str
    started_at: float  # seconds since the scenario began
    ready_at: float | None = None  # when /readyz first said 200; HTTP is probed from then on
    rss_mb: float = 0.0  # the last VmRSS read
    hwm_mb: float = 0.0  # the highest VmHWM read: the process's own peak
    in_flight_metric: int | None = None  # the highest bridge_runs_in_flight read
    in_flight_log: int | None = None  # the highest `in_flight` of its log
    http_probes: int = 0
    metrics_unanswered: int = 0  # no 200 with the gauge within HTTP_TIMEOUT_S
    healthz_failing: int = 0  # /healthz answered, but not 200 (a stall, as Kubernetes would see it)
    healthz_unanswered: int = 0  # /healthz gave no answer within HTTP_TIMEOUT_S (a probe timeout)
    ended: str = "running"


class Serve:
    """One `python -m bridge serve` process of the group, with its own HTTP port, workdir and log file."""

    def __init__(self, name: str, config: Path, workdir: Path, log_path: Path, began: float) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.seen = Observed(name, round(time.monotonic() - began, 1))
        self._log: IO[bytes] = log_path.open("ab")
        env = {**os.environ, "BRIDGE_LOG_FORMAT": "json"}  # so `in_flight` can be read back from the log
        argv = [sys.executable, "-m", "bridge", "--log-level", "info", "serve", "-c", str(config)]
        argv += ["--http-port", str(self.port), "--workdir", str(workdir)]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=workdir.parent)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample_memory(self) -> float:
        """Read VmRSS and VmHWM from /proc; returns the RSS in MB (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        kb = {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM") if k in fields}
        self.seen.rss_mb = kb.get("VmRSS", 0) / 1024
        self.seen.hwm_mb = max(self.seen.hwm_mb, kb.get("VmHWM", 0) / 1024)
        return self.seen.rss_mb

    def _get(self, path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=HTTP_TIMEOUT_S) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except OSError:
            return None

    def probe_http(self) -> None:
        """One look at `/metrics` (runs in flight) and `/healthz`; blocking, run it in a thread."""
        self.seen.http_probes += 1
        metrics = self._get("/metrics")
        value = _gauge(metrics[1], "bridge_runs_in_flight") if metrics and metrics[0] == 200 else None
        if value is None:
            self.seen.metrics_unanswered += 1
        else:
            self.seen.in_flight_metric = max(self.seen.in_flight_metric or 0, int(value))
        health = self._get("/healthz")
        if health is None:
            self.seen.healthz_unanswered += 1
        elif health[0] != 200:
            self.seen.healthz_failing += 1

    def ready(self) -> bool:
        answer = self._get("/readyz")
        return answer is not None and answer[0] == 200

    def _ended(self, how: str) -> None:
        self.seen.ended = how
        self._log.close()

    def kill9(self, why: str) -> None:
        if not self.alive():
            self._ended(f"exited {self.proc.returncode} on its own")
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._ended(why)

    async def terminate(self, timeout_s: float = 30) -> None:
        """SIGTERM, then SIGKILL past `timeout_s`; records how it ended."""
        if not self.alive():
            self._ended(f"exited {self.proc.returncode} on its own")
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, timeout_s)
        if self.alive():
            self.kill9(f"SIGKILL after SIGTERM was not done in {timeout_s:g} s")
        else:
            self._ended(f"exit {self.proc.returncode} after SIGTERM")

    def read_log(self) -> None:
        """The highest `in_flight` any JSON log line of this process reported."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and isinstance(event.get("in_flight"), int):
                    self.seen.in_flight_log = max(self.seen.in_flight_log or 0, event["in_flight"])


def _gauge(text: bytes, name: str) -> float | None:
    for line in text.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ---- measuring ---------------------------------------------------------------------------------------------


class Results:
    """A read_committed reader of the results topic: final results and distinct run ids seen."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._partitions = partitions
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
        )
        self._topic = topic
        self.final = 0
        self.run_ids: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    with contextlib.suppress(ValueError, TypeError):
                        data = json.loads(record.value)
                        if data.get("schema") == RESULT_SCHEMA:
                            self.final += 1
                            self.run_ids.add(str(data.get("run_id")))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


class Aborted(Exception):
    """A serve process went past `--abort-rss-mb`."""


class Scenario:
    """The replicas, their sampling, and the timeline of faults."""

    def __init__(self, config: Path, root: Path, args: argparse.Namespace) -> None:
        self.config = config
        self.root = root
        self.args = args
        self.began = time.monotonic()
        self.serves: list[Serve] = []
        self.events: list[str] = []
        self.aborted: str | None = None
        self.peak_total_mb = 0.0  # the highest sum of the live processes' RSS at one sample
        self.measured_s = 0.0  # from A's first start to the end of the timeline (or the abort), before stopping
        self._workdirs: dict[str, Path] = {}

    def now(self) -> float:
        return time.monotonic() - self.began

    def event(self, what: str) -> None:
        self.events.append(f"{self.now():6.1f} s  {what}")
        log(f"t={self.now():.1f}s {what}")

    def start(self, name: str) -> Serve:
        workdir = self._workdirs.setdefault(name, self.root / f"work-{name}")
        workdir.mkdir(exist_ok=True)
        starts = sum(1 for s in self.serves if s.seen.name.split("#")[0] == name) + 1
        label = f"{name}#{starts}"
        serve = Serve(label, self.config, workdir, self.root / f"serve-{label}.log", self.began)
        self.serves.append(serve)
        self.event(f"replica {label} started (pid {serve.proc.pid})")
        return serve

    async def wait_ready(self, serve: Serve, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while serve.alive() and time.monotonic() < deadline:
            if await asyncio.to_thread(serve.ready):
                serve.seen.ready_at = round(self.now(), 1)
                self.event(f"replica {serve.seen.name} ready")
                return
            await asyncio.sleep(0.2)
        self.event(f"replica {serve.seen.name} not ready after {timeout_s:g} s (alive: {serve.alive()})")

    async def sample_memory(self) -> None:
        """Every RSS_EVERY_S: each live process's memory; past the abort line, kill it and end the run."""
        while True:
            live = [s for s in self.serves if s.alive()]
            total = sum(s.sample_memory() for s in live)
            self.peak_total_mb = max(self.peak_total_mb, total)
            for serve in live:
                if serve.seen.rss_mb > self.args.abort_rss_mb:
                    self.aborted = f"{serve.seen.name} reached {serve.seen.rss_mb:.0f} MB at {self.now():.1f} s"
                    serve.kill9(f"SIGKILL: past --abort-rss-mb {self.args.abort_rss_mb}")
                    self.event(f"aborted: {self.aborted}")
                    raise Aborted(self.aborted)
            await asyncio.sleep(RSS_EVERY_S)  # the sampling period, not a synchronisation

    async def probe_http(self) -> None:
        """Every HTTP_EVERY_S: each live process's /metrics and /healthz, all at once in threads."""
        while True:
            live = [s for s in self.serves if s.alive() and s.seen.ready_at is not None]
            await asyncio.gather(*(asyncio.to_thread(s.probe_http) for s in live))
            await asyncio.sleep(HTTP_EVERY_S)  # the probing period, not a synchronisation

    async def until(self, at_s: float) -> None:
        await asyncio.sleep(max(0.0, at_s - self.now()))  # the timeline's own clock

    async def timeline(self) -> None:
        """A starts; B joins at 25 % and leaves; A is killed with SIGKILL at 60 % and restarted; the end."""
        total = self.args.seconds
        first = self.start("A")
        await self.wait_ready(first, 60)
        await self.until(0.25 * total)
        second = self.start("B")
        await self.wait_ready(second, 60)
        await self.until(self.now() + max(10.0, 0.15 * total))
        self.event("replica B leaves (SIGTERM)")
        await second.terminate()
        self.event(f"replica B: {second.seen.ended}")
        await self.until(0.6 * total)
        first.kill9("SIGKILL (the forced restart)")
        self.event("replica A killed with SIGKILL")
        again = self.start("A")
        await self.wait_ready(again, 60)
        await self.until(total)
        self.event("the end: replicas stop (SIGTERM)")

    async def run(self) -> None:
        samplers = [asyncio.create_task(self.sample_memory()), asyncio.create_task(self.probe_http())]
        plan = asyncio.create_task(self.timeline())
        try:
            await asyncio.wait([plan, samplers[0]], return_when=asyncio.FIRST_COMPLETED)
            if samplers[0].done() and not isinstance(samplers[0].exception(), Aborted):
                samplers[0].result()
            if plan.done():
                plan.result()
        finally:
            self.measured_s = self.now()
            for task in (plan, *samplers):
                task.cancel()
            await asyncio.gather(plan, *samplers, return_exceptions=True)
            await asyncio.gather(*(s.terminate() for s in self.serves if s.seen.ended == "running"))
            for serve in self.serves:
                serve.read_log()


# ---- the report --------------------------------------------------------------------------------------------


def verdict(scenario: Scenario, results: Results, target_mb: float) -> tuple[bool, str]:
    peak = max((s.seen.hwm_mb for s in scenario.serves), default=0.0)
    if scenario.aborted:
        return False, f"aborted: {scenario.aborted}"
    if not results.final:
        return False, "no result was published: nothing was measured"
    if peak > target_mb:
        return False, f"peak RSS {peak:.1f} MB > {target_mb:g} MB"
    return True, f"peak RSS {peak:.1f} MB <= {target_mb:g} MB"


def table(report: dict[str, Any]) -> str:
    rows = [
        (
            "replica",
            "started/ready s",
            "peak RSS MB",
            "last RSS MB",
            "in flight (metric/log)",
            "/metrics lost",
            "healthz 503/timeout",
            "ended",
        )
    ]
    for s in report["replicas"]:
        flight = f"{s['in_flight_metric'] if s['in_flight_metric'] is not None else '-'}"
        flight += f" / {s['in_flight_log'] if s['in_flight_log'] is not None else '-'}"
        rows.append(
            (
                s["name"],
                f"{s['started_at']:.1f}/{s['ready_at'] if s['ready_at'] is not None else 'never'}",
                f"{s['hwm_mb']:.0f}",
                f"{s['rss_mb']:.0f}",
                flight,
                f"{s['metrics_unanswered']}/{s['http_probes']}",
                f"{s['healthz_failing']}/{s['healthz_unanswered']} of {s['http_probes']}",
                s["ended"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    b = report["backlog"]
    lines += [
        "",
        f"backlog: {b['suggestions']} suggestions in {b['messages']} messages ({b['messages_of_1024']} of 1024), "
        f"{b['mb']} MB, produced in {b['seconds']} s",
        f"peak RSS of any serve process: {report['peak_rss_mb']:.1f} MB "
        f"(all live ones together: {report['peak_total_rss_mb']:.0f} MB)",
        f"runs in flight, peak of one replica: {report['runs_in_flight_peak']} "
        f"(max_in_flight {report['max_in_flight']})",
        f"results seen (read_committed, until every replica stopped): {report['results']} "
        f"({report['distinct_runs']} distinct runs); measured for {report['seconds']:.0f} s; backlog left: "
        f"{report['backlog']['suggestions'] - report['distinct_runs']} suggestions",
        f"{'PASS' if report['pass'] else 'FAIL'}: {report['verdict']}",
    ]
    return "\n".join(lines)


async def bench(bootstrap: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    config = write_config(bootstrap, root, args.max_in_flight, args.max_parallel)
    settings = await create_topics(config)
    log(f"producing {args.suggestions} suggestions to {settings.topics.suggestions}")
    produced = await produce_backlog(bootstrap, settings.topics.suggestions, args.suggestions, args.seed)
    log(f"backlog produced: {produced}")
    results = Results(bootstrap, settings.topics.results, settings.kafka.topic_partitions)
    await results.start()
    scenario = Scenario(config, root, args)
    try:
        await scenario.run()
    finally:
        await results.stop()
    ok, why = verdict(scenario, results, args.target_mb)
    flights = [v for s in scenario.serves for v in (s.seen.in_flight_metric, s.seen.in_flight_log) if v is not None]
    return {
        "benchmark": "memory_backlog",
        "pass": ok,
        "verdict": why,
        "target_mb": args.target_mb,
        "peak_rss_mb": round(max((s.seen.hwm_mb for s in scenario.serves), default=0.0), 1),
        "peak_total_rss_mb": round(scenario.peak_total_mb, 1),
        "runs_in_flight_peak": max(flights, default=None),
        "max_in_flight": args.max_in_flight,
        "results": results.final,
        "distinct_runs": len(results.run_ids),
        "seconds": round(scenario.measured_s, 1),
        "backlog": produced,
        "replicas": [dataclasses.asdict(s.seen) for s in scenario.serves],
        "events": scenario.events,
        "config": {"max_parallel": args.max_parallel, "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suggestions", type=int, default=1_000_000, help="the backlog, published before serve starts")
    p.add_argument("--seconds", type=float, default=240, help="how long serve is measured, from its start")
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--max-parallel", type=int, default=4, help="executor.max_parallel")
    p.add_argument("--target-mb", type=float, default=200, help="PASS when every serve process peaks at or below")
    p.add_argument("--abort-rss-mb", type=float, default=2048, help="kill a serve process past this and FAIL")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bootstrap", default=os.environ.get(BOOTSTRAP_ENV), help="use this broker, start none")
    p.add_argument("--keep", action="store_true", help="keep the work dir (config, serve logs) and say where")
    args = p.parse_args()
    from bridge.logs import configure

    configure("warning")  # the bridge's helpers log through structlog: keep stdout for this benchmark's JSON
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # coordinator retries while topics are new
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        with broker(args.bootstrap) as bootstrap:
            report = asyncio.run(bench(bootstrap, args, root))
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(table(report), file=sys.stderr)
    print(json.dumps(report))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done in {time.monotonic() - began:.0f} s")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
