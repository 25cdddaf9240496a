"""`bridge dash` facing a results topic of 1,000,000 results: its memory, and how soon it renders.

On its own broker (deploy/kafka/kafka.sh, loopback, free ports) unless `--bootstrap` names one, it fills a fresh
results topic with `--results` final results (`bridge.result/v1`, as the bridge writes them, over `--studies`
studies, each with params and a loss), starts `bridge dash` as a process, and reports:

- the time until `/readyz` says the dash has read the topics to the end they had when it started,
- the first render after that: the time of `GET /` and of one study's page (plots included),
- the process's peak RSS (VmHWM, from /proc) while it read everything and rendered.

Targets (the dash issue): under 300 MB RSS, first page within 2 s of ready. The figures go to
`benchmarks/results/dash.json`; BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from serve_throughput import broker, create_topics

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
RSS_TARGET_MB = 300.0
RENDER_TARGET_S = 2.0


def log(msg: str) -> None:
    print(f"[dash_memory] {msg}", file=sys.stderr, flush=True)


def result(study: str, n: int, at: datetime) -> bytes:
    """One final result as the bridge writes it."""
    loss = ((n * 7919) % 10007) / 10007
    return json.dumps(
        {
            "schema": "bridge.result/v1",
            "study": study,
            "template": "cnn",
            "operation_id": f"op-{n // 64}",
            "run_id": f"{study}-{n}",
            "suggestion_id": f"t-{n}",
            "index": n % 64,
            "params": {"learning_rate": round(0.0001 + loss / 10, 6), "dropout": n % 5 / 10, "epochs": 3},
            "status": "succeeded",
            "outputs": {"loss": loss, "accuracy": 1 - loss},
            "attempt": 1,
            "started_at": (at - timedelta(seconds=2)).isoformat(),
            "finished_at": at.isoformat(),
            "duration_s": 2.0,
            "metadata": {"optimizer": "bench"},
        },
        separators=(",", ":"),
    ).encode()


async def fill(bootstrap: str, topic: str, count: int, studies: int) -> float:
    """Publish `count` results round-robin over `studies`; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1024 * 1024, acks=1, compression_type=None
    )
    await producer.start()
    began = time.monotonic()
    start = datetime.now(UTC) - timedelta(seconds=count // 100)
    try:
        pending: list[asyncio.Future[Any]] = []
        for n in range(count):
            study = f"study-{n % studies}"
            pending.append(
                await producer.send(topic, result(study, n, start + timedelta(milliseconds=10 * n)), key=study.encode())
            )
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
                if n % 100000 < 20000:
                    log(f"{n + 1} results published")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - began


def rss(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of `pid`, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def get(url: str) -> tuple[int, float, int]:
    """Status, seconds and bytes of one GET."""
    began = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            return response.status, time.monotonic() - began, len(body)
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - began, 0


def measure(config: Path, keep_runs: int, log_path: Path, timeout_s: float) -> dict[str, Any]:
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "dash",
                "-c",
                str(config),
                "--port",
                "0",
                "--runs-per-study",
                str(keep_runs),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    began = time.monotonic()
    try:
        url = ""
        while not url:
            if proc.poll() is not None:
                raise RuntimeError(f"bridge dash exited: {log_path.read_text()}")
            found = re.search(r"serving on (http://[0-9.]+:\d+/)", log_path.read_text())
            url = found.group(1) if found else ""
            time.sleep(0.1)  # polling another process's output
        listening_s = time.monotonic() - began
        ready_s = None
        peak_reading = 0.0
        while time.monotonic() - began < timeout_s:
            _, hwm = rss(proc.pid)
            peak_reading = max(peak_reading, hwm)
            status, _, _ = get(url + "readyz")
            if status == 200:
                ready_s = time.monotonic() - began
                break
            time.sleep(0.5)  # polling another process's readiness
        if ready_s is None:
            raise RuntimeError(f"not ready after {timeout_s} s")
        overview = get(url)
        study = get(url + "study?name=study-0")
        run_id = json.loads(urllib.request.urlopen(url + "api/study?name=study-0", timeout=30).read())["runs"][0][
            "run_id"
        ]
        run = get(url + f"run?id={run_id}")
        now_rss, hwm = rss(proc.pid)
        return {
            "listening_s": round(listening_s, 2),
            "ready_s": round(ready_s, 2),
            "first_render_overview_s": round(overview[1], 3),
            "first_render_study_s": round(study[1], 3),
            "render_run_s": round(run[1], 3),
            "overview_bytes": overview[2],
            "study_bytes": study[2],
            "statuses": [overview[0], study[0], run[0]],
            "rss_mb_after": round(now_rss, 1),
            "peak_rss_mb": round(max(hwm, peak_reading), 1),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("BRIDGE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--keep-runs", type=int, default=200, help="the dash's --runs-per-study")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds the dash may take to be ready")
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = {name: f"{prefix}.{name}" for name in ("suggestions", "results", "operations", "dead_letters", "control")}
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        asyncio.run(create_topics(bootstrap, list(topics.values())))
        fill_s = asyncio.run(fill(bootstrap, topics["results"], args.results, args.studies))
        log(f"{args.results} results published in {fill_s:.1f} s")
        config = Path(tmp) / "bridge.yaml"
        config.write_text(json.dumps({"kafka": {"bootstrap_servers": bootstrap}, "topics": topics}))
        figures = measure(config, args.keep_runs, Path(tmp) / "dash.log", args.timeout)
    figures.update(
        results=args.results,
        studies=args.studies,
        keep_runs=args.keep_runs,
        fill_s=round(fill_s, 1),
        rss_target_mb=RSS_TARGET_MB,
        render_target_s=RENDER_TARGET_S,
        rss_met=figures["peak_rss_mb"] <= RSS_TARGET_MB,
        render_met=max(figures["first_render_overview_s"], figures["first_render_study_s"]) <= RENDER_TARGET_S,
        loadavg_1m=os.getloadavg()[0],
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "dash.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0 if figures["rss_met"] and figures["render_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
