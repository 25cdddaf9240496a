"""The load an optimizer makes: one study, one-suggestion messages, `bridge serve` as its own process, and the CPU
of every process on the machine that serves it (the bridge, its runs, the broker's JVM, the client) counted.

Phases, on one broker (its own unless `--bootstrap`), with `bridge serve -c bridge.yaml` started as a process
(`linger_ms: 0`, `max_parallel: 4`, cache off, a `bash` template that appends `$BRIDGE_RUN_ID $EPOCHREALTIME`
to a file at its start):

- `rate`: `--rate` one-suggestion messages/s under one study key for `--seconds`: publish -> run start (the run's
  own stamp) p50/p99, overall and per tenth of the phase (growth: the bridge falling behind shows as a rising
  tail), and CPU per result of each process, from /proc, between the first publish and the last result seen by a
  `read_committed` consumer.
- `capacity`: `--burst` one-suggestion messages of one study sent at once: results/s from the first publish to
  the last result seen, and CPU per result.

Each phase first sends one message and waits for its result (producers started, transactional ids initialised).
Output: JSON on stdout and in benchmarks/results/one_study.json; `report.py` puts it into BENCHMARKS.md.
With `--profile DIR`: a py-spy flame graph of `bridge serve` and a JFR recording of the broker over the rate
phase, and each one's top frames on stderr.

    python benchmarks/one_study.py [--rate 100] [--seconds 60] [--burst 2000] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optuna_study import _ready
from serve_throughput import (
    TEMPLATE,
    _free_ports,
    _read_stamps,
    _stages,
    bridge_settings,
    create_topics,
    delete_topics,
    pct,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
STUDY = "optuna-study-0"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"one_study: {msg}", file=sys.stderr, flush=True)


# ---- CPU of processes, from /proc ------------------------------------------------------------------------------


def cpu_s(pid: int, *, children: bool = False, system: bool = True, user: bool = True) -> float:
    """CPU seconds of `pid` (user and/or system), and of its reaped children when asked (a run is a reaped
    child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14 to 17 of proc(5)
    ticks = (int(fields[11]) if user else 0) + (int(fields[12]) if system else 0)
    if children:
        ticks += (int(fields[13]) if user else 0) + (int(fields[14]) if system else 0)
    return ticks / TICK


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each kind of thread of `pid` (a thread's name with its numbers left out)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = re.sub(r"[0-9]+", "N", (task / "comm").read_text().strip())
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def threads_per_result(
    before: dict[str, float], after: dict[str, float], results: int, n: int = 12
) -> dict[str, float]:
    """ms per result of the `n` busiest kinds of thread."""
    per = {k: (v - before.get(k, 0.0)) * 1000 / results for k, v in after.items()}
    return {k: round(v, 3) for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:n]}


class Meters:
    """CPU seconds of the bridge, its runs, the broker and this client, read together."""

    def __init__(self, serve: int, broker: int | None) -> None:
        self._serve, self._broker = serve, broker

    def read(self) -> dict[str, float]:
        serve_own = cpu_s(self._serve)
        out = {
            "serve": serve_own,
            "runs": cpu_s(self._serve, children=True) - serve_own,
            "client": time.process_time(),
        }
        if self._broker is not None:
            out["broker"] = cpu_s(self._broker)
            out["broker_system"] = cpu_s(self._broker, user=False)
        out["serve_system"] = cpu_s(self._serve, user=False)
        return out

    @staticmethod
    def per_result(before: dict[str, float], after: dict[str, float], results: int) -> dict[str, float]:
        """ms of CPU per result, per process and for the machine's share that is not the runs themselves."""
        per = {k: (after[k] - before[k]) * 1000 / results for k in after}
        per["bridge_broker_client"] = sum(v for k, v in per.items() if k in ("serve", "broker", "client"))
        return {k: round(v, 3) for k, v in per.items()}


# ---- the broker and the bridge, as processes -------------------------------------------------------------------


@contextlib.contextmanager
def own_broker(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, the broker JVM's pid): the one given (pid unknown), else a fresh one, stopped at the end."""
    if bootstrap:
        yield bootstrap, None
        return
    port, cport = _free_ports(2)
    kafka_sh = ROOT / "deploy" / "kafka" / "kafka.sh"
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as run_dir:
        env = {**os.environ, "KAFKA_RUN_DIR": run_dir, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport)}
        done = subprocess.run(["bash", str(kafka_sh), "up"], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh up failed:\n{done.stdout}{done.stderr}")
        pid = int(Path(run_dir, "kafka.pid").read_text())
        log(f"broker up on 127.0.0.1:{port}, pid {pid}")
        try:
            yield f"127.0.0.1:{port}", pid
        finally:
            subprocess.run(["bash", str(kafka_sh), "down"], env=env, capture_output=True, check=False)


@contextlib.contextmanager
def serve_process(
    config: Path, http_port: int, log_path: Path, log_level: str = "info"
) -> Iterator[subprocess.Popen[bytes]]:
    """`bridge serve -c config` as its own process, until ready; SIGTERM (a drain) at the end."""
    env = {**os.environ, "BRIDGE_HTTP__PORT": str(http_port)}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "bridge"), "--log-level", log_level, "serve", "-c", str(config)], stdout=out, stderr=out, env=env
        )
    try:
        deadline = time.monotonic() + 90
        while not _ready(http_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge serve not ready (exit {proc.poll()}): {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape(port: int) -> dict[str, float]:
    """The bridge's own counters that tell where a result's cost goes (transactions, their time)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("bridge_publish_transactions_total", "bridge_publish_transaction_duration_seconds_sum"):
            if line.startswith(name):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# ---- profiles --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(out: Path | None, serve: int, broker: int | None, seconds: float) -> Iterator[None]:
    """py-spy on `bridge serve` and a JFR recording of the broker while the block runs (when `out` is given)."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy = None
    if shutil.which("py-spy") or (BIN / "py-spy").exists():
        spy_bin = str(BIN / "py-spy") if (BIN / "py-spy").exists() else "py-spy"
        spy = subprocess.Popen(
            [spy_bin, "record", "-p", str(serve), "-o", str(out / "serve.svg"), "-r", "97", "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        speedscope = subprocess.Popen(
            [
                spy_bin,
                "record",
                "-p",
                str(serve),
                "-o",
                str(out / "serve.txt"),
                "-f",
                "raw",
                "-r",
                "97",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        log("py-spy not installed: no profile of bridge serve (pip install py-spy)")
    jfr = out / "broker.jfr"
    if broker is not None:
        subprocess.run(
            ["jcmd", str(broker), "JFR.start", "name=bench", "settings=profile", f"filename={jfr}"],
            capture_output=True,
            check=False,
        )
    try:
        yield
    finally:
        if broker is not None:
            subprocess.run(["jcmd", str(broker), "JFR.stop", "name=bench"], capture_output=True, check=False)
        if spy is not None:
            for p in (spy, speedscope):
                p.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(30)
    top_python(out / "serve.txt")
    top_java(jfr)


def top_python(raw: Path, n: int = 25) -> None:
    """The functions most often on py-spy's samples (self and total), from its raw (collapsed) output."""
    if not raw.exists():
        return
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        k = int(count)
        samples += k
        own[frames[-1]] = own.get(frames[-1], 0) + k
        for f in set(frames):
            total[f] = total.get(f, 0) + k
    log(f"bridge serve, py-spy: {samples} samples; most often running (self %):")
    for frame, k in sorted(own.items(), key=lambda kv: -kv[1])[:n]:
        log(f"  {100 * k / samples:5.1f}%  {frame}")


def top_java(jfr: Path, n: int = 15) -> None:
    """Where the broker's sampled time went: by the request it served (the `KafkaApis.handle...` frame on the
    stack, else the thread's own loop) and by the deepest Kafka method (the first `kafka` frame from the top)."""
    if not jfr.exists():
        return
    done = subprocess.run(
        ["jfr", "print", "--json", "--events", "jdk.ExecutionSample", str(jfr)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        log(f"jfr print failed: {done.stderr[-500:]}")
        return
    by_request: dict[str, int] = {}
    by_method: dict[str, int] = {}
    samples = 0
    for event in json.loads(done.stdout)["recording"]["events"]:
        trace = event["values"].get("stackTrace") or {}
        names = [f"{f['method']['type']['name']}.{f['method']['name']}" for f in trace.get("frames", [])]
        if not names:
            continue
        samples += 1
        handler = next((m for m in names if "KafkaApis.handle" in m and m != "kafka/server/KafkaApis.handle"), None)
        request = handler or f"(outside a request) {names[-1]}"
        by_request[request] = by_request.get(request, 0) + 1
        method = next((m for m in names if m.startswith(("kafka/", "org/apache/kafka/"))), names[0])
        by_method[method] = by_method.get(method, 0) + 1
    log(f"broker, JFR: {samples} execution samples (Java code only: the JIT and the kernel are not in them)")
    for title, table in (("by request", by_request), ("by deepest Kafka method", by_method)):
        log(f"  {title}:")
        for name, k in sorted(table.items(), key=lambda kv: -kv[1])[:n]:
            log(f"    {100 * k / max(1, samples):5.1f}%  {name}")


# ---- the phases ------------------------------------------------------------------------------------------------


def latencies(
    seen: list[tuple[float, dict[str, Any]]], sent: dict[str, float], starts: dict[str, float]
) -> list[float]:
    """publish -> run start, ms, in the order the suggestions were sent."""
    run_of = {d["suggestion_id"]: d["run_id"] for _, d in seen if d.get("suggestion_id") in sent}
    return [
        (starts[run_of[sid]] - at) * 1000
        for sid, at in sorted(sent.items(), key=lambda kv: kv[1])
        if run_of.get(sid) in starts
    ]


def summary(values: list[float]) -> dict[str, Any]:
    tenth = max(1, len(values) // 10)
    tenths = [values[i : i + tenth] for i in range(0, len(values), tenth)][:10]
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) or 0, 1),
        "p99_ms": round(pct(values, 99) or 0, 1),
        "max_ms": round(max(values), 1) if values else None,
        "p50_by_tenth_ms": [round(statistics.median(t), 1) for t in tenths],
        "p99_by_tenth_ms": [round(pct(t, 99) or 0, 1) for t in tenths],
    }


class Client:
    """The optimizer's side as users run it: one `BridgeClient`, sending one-suggestion messages of one study and
    reading every result (`stream`), noting when each was sent and seen."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: dict[str, float] = {}
        self.results: list[tuple[float, Any]] = []  # (when seen, RunResult): read after the measurement
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for result in self._client.stream():
            self.results.append((time.time(), result))
            self._changed.set()

    async def send(self, ids: list[str], rate: float | None) -> dict[str, float]:
        """One message per id, at `rate` messages/s (None: all at once); each id's send time."""
        began, sent, pending = time.time(), {}, []
        for n, sid in enumerate(ids):
            if rate is not None:
                await asyncio.sleep(max(0.0, began + n / rate - time.time()))
            sent[sid] = time.time()
            one = self._client.submit(STUDY, TEMPLATE, [{"id": sid, "params": {"x": n}}], iteration=n)
            pending.append(asyncio.ensure_future(one))
            if rate is not None:
                await pending[-1]
        await asyncio.gather(*pending)
        self.sent.update(sent)
        return sent

    async def until(self, count: int, timeout_s: float = 300) -> float:
        """When the `count`-th result was seen."""
        deadline = time.monotonic() + timeout_s
        while len(self.results) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.results)} of {count} results seen")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1)
        return float(self.results[count - 1][0])

    @property
    def seen(self) -> list[tuple[float, dict[str, Any]]]:
        """The results as `_stages` reads them (converted after the measurement, not in the client's time)."""
        return [
            (
                at,
                {
                    "suggestion_id": r.suggestion_id,
                    "run_id": r.run_id,
                    "started_at": r.started_at.isoformat(),
                    "finished_at": r.finished_at.isoformat(),
                },
            )
            for at, r in self.results
            if r.started_at is not None and r.finished_at is not None
        ]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def configure(path: Path, args: argparse.Namespace) -> None:
    """The A/B knobs into the bridge's config, when given (else its defaults: a bridge without a key runs too)."""
    if args.commit_interval_ms is None:
        return
    config = json.loads(path.read_text())  # JSON is YAML
    config["kafka"]["commit_interval_ms"] = args.commit_interval_ms
    path.write_text(json.dumps(config))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bridge.client import BridgeClient

    tmp = Path(tempfile.mkdtemp(prefix="one-study-"))
    out: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "burst": args.burst,
        "commit_interval_ms": args.commit_interval_ms,
    }
    with own_broker(args.bootstrap) as (bootstrap, broker_pid):
        stamps = tmp / "stamps"
        settings = bridge_settings(bootstrap, tmp, stamps, args.max_parallel, linger_ms=0)
        configure(tmp / "bridge.yaml", args)
        topics = settings.topics
        names = list(topics.model_dump().values())
        await create_topics(bootstrap, names)
        (http_port,) = _free_ports(1)
        try:
            with serve_process(tmp / "bridge.yaml", http_port, tmp / "serve.log", args.serve_log_level) as serve:
                meters = Meters(serve.pid, broker_pid)
                async with BridgeClient(kafka=settings.kafka, topics=topics) as bridge_client:
                    client = Client(bridge_client)
                    # warm: the transactional ids initialised, the broker's JIT past its first compiles (a broker in
                    # production has run for days), at the rate that is measured next
                    warm = max(1, int(args.rate * args.warm_seconds))
                    await client.send([f"w-{i}" for i in range(warm)], args.rate)
                    await client.until(warm)
                    # rate: one study, one suggestion per message
                    n = int(args.rate * args.seconds)
                    before, counted = meters.read(), scrape(http_port)
                    broker_threads = threads_cpu(broker_pid) if broker_pid else {}
                    with profiled(args.profile, serve.pid, broker_pid, args.seconds):
                        sent = await client.send([f"r-{i}" for i in range(n)], args.rate)
                        await client.until(warm + n)
                    after, counted_after = meters.read(), scrape(http_port)
                    transactions = (
                        counted_after["bridge_publish_transactions_total"]
                        - counted["bridge_publish_transactions_total"]
                    )
                    starts = _read_stamps(stamps)
                    stages = _stages(client.seen, sent, starts)
                    spent = (
                        counted_after["bridge_publish_transaction_duration_seconds_sum"]
                        - counted["bridge_publish_transaction_duration_seconds_sum"]
                    )
                    out["rate_phase"] = {
                        "transactions_per_result": round(transactions / n, 2),
                        "transaction_ms_mean": round(1000 * spent / max(1.0, transactions), 2),
                        "latency_publish_to_start": summary(latencies(client.seen, sent, starts)),
                        "stages_p50_p99_ms": {
                            k: [round(pct(v, 50) or 0, 1), round(pct(v, 99) or 0, 1)] for k, v in stages.items()
                        },
                        "cpu_ms_per_result": Meters.per_result(before, after, n),
                        "broker_threads_ms_per_result": threads_per_result(broker_threads, threads_cpu(broker_pid), n)
                        if broker_pid
                        else {},
                    }
                    log(f"rate phase: {json.dumps(out['rate_phase'])}")
                    # capacity: a burst of one study's one-suggestion messages
                    before = meters.read()
                    sent = await client.send([f"b-{i}" for i in range(args.burst)], None)
                    last = await client.until(warm + n + args.burst)
                    after = meters.read()
                    seconds = last - min(sent.values())
                    out["capacity_phase"] = {
                        "results_per_s": round(args.burst / seconds, 1),
                        "seconds": round(seconds, 2),
                        "cpu_ms_per_result": Meters.per_result(before, after, args.burst),
                    }
                    log(f"capacity phase: {json.dumps(out['capacity_phase'])}")
                    await client.stop()
            text = (tmp / "serve.log").read_text(errors="replace")
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "one_study.serve.log").write_text(text)
            out["serve_log"] = {
                "transaction_retries": text.count("transaction_retry"),
                "not_enough_replicas": text.count("NotEnoughReplicas"),
            }
        finally:
            await delete_topics(bootstrap, names)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="one-suggestion messages/s in the rate phase")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the rate phase")
    parser.add_argument("--warm-seconds", type=float, default=20.0, help="the same load before measuring")
    parser.add_argument("--burst", type=int, default=2000, help="messages sent at once in the capacity phase")
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--commit-interval-ms", type=int, default=None, help="kafka.commit_interval_ms (default 2)")
    parser.add_argument("--out", default="one_study.json", help="the file in benchmarks/results/ (A/B runs)")
    parser.add_argument("--serve-log-level", default="info", help="debug shows aiokafka's retries in the log")
    parser.add_argument("--bootstrap", default=os.environ.get("BRIDGE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--profile", type=Path, default=None, help="a directory for serve.svg and broker.jfr")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
