"""What `bridge run` costs over running the same runs by hand, measured in one process, same machine, same run.

For each workload, the baseline starts the same argv lists itself (asyncio subprocesses, the same concurrency),
then `bridge run -f` runs the polyaxonfile (cache off, a fresh work dir). Both are repeated; the medians give the
overhead in seconds (total and per run) and the ratio bridge/baseline. The `cli_start` row times `bridge
--version` and `bridge --help` (the console script, a new process each time) against `python -c pass`, the
interpreter's own start. Results go to stdout and benchmarks/results/overhead.json.

    python benchmarks/run_overhead.py [--repeat 3] [--runs 100] [--concurrency 4] [--skip-quick-start]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = [sys.executable, "-c", "from bridge.tracking import log_outputs; log_outputs(loss=0.5)"]


async def _by_hand(argvs: list[list[str]], concurrency: int, cwd: Path) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one(argv: list[str]) -> None:
        async with slots:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if await proc.wait() != 0:
                raise RuntimeError(f"baseline run failed: {argv}")

    began = time.perf_counter()
    await asyncio.gather(*(one(a) for a in argvs))
    return time.perf_counter() - began


def _bridge(polyaxonfile: Path, workdir: Path) -> float:
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "run",
            "-f",
            str(polyaxonfile),
            "--workdir",
            str(workdir),
            "--output",
            "jsonl",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - began


def _tiny_workload(tmp: Path, runs: int, concurrency: int) -> tuple[Path, list[list[str]]]:
    component = {
        "kind": "component",
        "inputs": [{"name": "i", "type": "int"}],
        "run": {"kind": "job", "container": {"image": "python", "command": TINY}},
    }
    op = {
        "version": 1.1,
        "kind": "operation",
        "name": "tiny",
        "cache": {"disable": True},
        "component": component,
        "matrix": {"kind": "mapping", "concurrency": concurrency, "values": [{"i": i} for i in range(runs)]},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(op))
    return path, [TINY] * runs


def _quick_start_workload(tmp: Path) -> tuple[Path, list[list[str]], Path, int]:
    """The quick-start example's runs, and its own `matrix.concurrency` (the baseline runs them as the bridge
    must: two at a time, not `--concurrency`)."""
    src = ROOT / "examples" / "quick-start" / "mapping.yaml"
    doc = yaml.safe_load(src.read_text())
    doc["cache"] = {"disable": True}
    path = src.parent / ".bench-mapping.yaml"
    path.write_text(yaml.safe_dump(doc))
    from bridge.engine.plan import plan_local
    from bridge.polyaxon import RunGlobals, load_operation, render_run

    op = load_operation(path)
    plan = plan_local(op, source=str(path), cwd=path.parent)
    assert op.component is not None
    argvs = []
    for run in plan.runs:
        g = RunGlobals(run_uuid=run.run_id, run_name="bench", artifacts_path=str(tmp), run_outputs_path=str(tmp))
        argv = render_run(op.component, run.params, g).argv
        argvs.append([sys.executable if a == "python3" else a for a in argv])
    return path, argvs, path.parent, int(doc["matrix"].get("concurrency") or len(argvs))


def measure(
    name: str, polyaxonfile: Path, argvs: list[list[str]], concurrency: int, cwd: Path, repeat: int
) -> dict[str, Any]:
    """Median wall seconds of the baseline and of `bridge run`, alternating to share any machine noise."""
    base, ours = [], []
    for i in range(repeat):
        base.append(asyncio.run(_by_hand(argvs, concurrency, cwd)))
        with tempfile.TemporaryDirectory() as work:
            ours.append(_bridge(polyaxonfile, Path(work) / f"w{i}"))
    b, o = statistics.median(base), statistics.median(ours)
    return {
        "workload": name,
        "runs": len(argvs),
        "concurrency": concurrency,
        "repeat": repeat,
        "baseline_s": round(b, 3),
        "bridge_s": round(o, 3),
        "overhead_s": round(o - b, 3),
        "overhead_per_run_s": round((o - b) / len(argvs), 4),
        "ratio": round(o / b, 3),
    }


def _wall(argv: list[str], repeat: int) -> float:
    """Median wall seconds of running `argv` to its end."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cli_start(repeat: int) -> dict[str, Any]:
    """`bridge --version` and `--help` against the interpreter starting and doing nothing."""
    script = str(Path(sys.executable).parent / "bridge")
    base = _wall([sys.executable, "-c", "pass"], repeat)
    version = _wall([script, "--version"], repeat)
    help_ = _wall([script, "--help"], repeat)
    return {
        "workload": "cli_start",
        "repeat": repeat,
        "python_pass_s": round(base, 3),
        "version_s": round(version, 3),
        "help_s": round(help_, 3),
        "target_s": 0.15,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--skip-quick-start", action="store_true")
    args = p.parse_args()
    rows = [cli_start(max(5, args.repeat))]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tiny, argvs = _tiny_workload(tmp, args.runs, args.concurrency)
        rows.append(measure("tiny", tiny, argvs, args.concurrency, tmp, args.repeat))
        if not args.skip_quick_start:
            qs, qargvs, cwd, concurrency = _quick_start_workload(tmp)
            try:
                rows.append(measure("quick-start", qs, qargvs, concurrency, cwd, args.repeat))
            finally:
                qs.unlink(missing_ok=True)
    for row in rows:
        print(json.dumps(row))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
