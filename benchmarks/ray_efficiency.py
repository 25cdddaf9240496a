"""How well the Ray executor fills a cluster: N one-CPU runs of D seconds over a three-node, one-CPU-per-node Ray
cluster on this machine, wall time against the ideal N x D / CPUs, and the orchestration cost per run next to
Ray Tune's on the same cluster, in the same process.

- bridge: one mapping operation of N runs (`python3 -c` that sleeps D s and logs an output with bridge.tracking)
  through the real scheduler and `RayExecutor`, concurrency and max_parallel N (Ray queues what has no CPU yet).
- Ray Tune: N trials of a function trainable that sleeps D s and reports once, one CPU each, the same cluster.

Efficiency is ideal / wall; the orchestration cost per run is (wall x CPUs - N x D) / N: the CPU-seconds of the
cluster each run held beyond its own work. Results go to stdout and benchmarks/results/ray_efficiency.json.
Ray stays on loopback only in a private network namespace: the script re-runs itself under
tests/private_network.sh when it is not in one. Ray Tune comes with `pip install 'ray[tune]==2.60.0'`
(`make bench-ray` installs it).

    python benchmarks/ray_efficiency.py [--runs 200] [--duration 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.ray_cluster starts and stops the cluster, as in the test session

from tests.ray_cluster import NODES, in_private_network, start_cluster  # noqa: E402

CPUS = NODES  # one CPU per node


def _operation(runs: int, duration: float, root: Path) -> Any:
    from bridge.polyaxon import parse_operation

    code = f"import time; time.sleep({duration}); from bridge.tracking import log_outputs; log_outputs(loss=0.5)"
    component = {
        "kind": "component",
        "name": "sleeper",
        "inputs": [{"name": "i", "type": "int"}],
        "outputs": [{"name": "loss", "type": "float"}],
        "run": {"kind": "job", "container": {"image": "python:3.11", "command": [sys.executable, "-c", code]}},
    }
    data = {
        "version": 1.1,
        "kind": "operation",
        "name": "ray-efficiency",
        "matrix": {"kind": "mapping", "values": [{"i": i} for i in range(runs)], "concurrency": runs},
        "cache": {"disable": True},
        "component": component,
    }
    return parse_operation(data, source="ray_efficiency", base_dir=root)


async def _bridge(address: str, runs: int, duration: float, root: Path) -> dict[str, Any]:
    from bridge.engine.plan import plan_local
    from bridge.engine.runtime import Runtime
    from bridge.engine.scheduler import OperationRunner
    from bridge.executors.ray import RayExecutor
    from bridge.local.file_ledger import FileLedger

    op = _operation(runs, duration, root)
    executor = RayExecutor(address, max_parallel=runs, workdir=root / "work")
    runtime = Runtime(executor=executor, ledger=FileLedger(root / "work" / "ops"))
    executor._connect()  # connecting is Ray's cost once per bridge process, not per run: outside the clock
    began = time.perf_counter()
    outcome = await OperationRunner(plan_local(op, source="bench", cwd=root), runtime).run()
    wall = time.perf_counter() - began
    await executor.close()
    counts = outcome.counts()
    assert counts["succeeded"] == runs, counts
    return {"wall_s": wall, "succeeded": counts["succeeded"]}


def _tune(runs: int, duration: float) -> dict[str, Any]:
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        time.sleep(duration)
        tune.report({"loss": 0.5})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(runs)))},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-"), verbose=0),
    )
    began = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - began
    assert not results.errors, results.errors
    return {"wall_s": wall, "succeeded": len(results)}


def _figures(wall: float, runs: int, duration: float) -> dict[str, float]:
    ideal = runs * duration / CPUS
    return {
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / wall, 3),
        "orchestration_s_per_run": round((wall * CPUS - runs * duration) / runs, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--no-tune", action="store_true", help="the bridge alone (Ray Tune not installed)")
    args = parser.parse_args()
    if not in_private_network():
        script = ROOT / "tests" / "private_network.sh"
        os.execv("/bin/bash", ["bash", str(script), sys.executable, *sys.argv])
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # A SIGTERM (a timeout) still stops the cluster: the finally below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="bridge-ray-bench-", dir="/tmp")))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bridge = asyncio.run(_bridge(cluster.address, args.runs, args.duration, Path(tmp)))
        tune = None if args.no_tune else _tune(args.runs, args.duration)
    finally:
        cluster.stop()
    report: dict[str, Any] = {
        "runs": args.runs,
        "duration_s": args.duration,
        "cpus": CPUS,
        "nodes": NODES,
        "bridge": _figures(bridge["wall_s"], args.runs, args.duration),
    }
    if tune is not None:
        report["ray_tune"] = _figures(tune["wall_s"], args.runs, args.duration)
    print(json.dumps(report, indent=2))
    out = ROOT / "benchmarks" / "results" / "ray_efficiency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
