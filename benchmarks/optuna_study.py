"""P5: an Optuna TPE study through Kafka and `bridge serve`, against the same study in-process, in the same run.

Both rows run the same study: TPE (same seed), `--trials` trials, `--in-flight` at once, each trial one short
subprocess (`python3 trial.py x y`: it prints its loss and reports it with `bridge.tracking.log_outputs`).

- `in_process`: `study.optimize(objective, n_trials, n_jobs=in_flight)`, the objective running the subprocess.
- `bridge`: `bridge serve` (the command, in its own process; `linger_ms: 0`, `max_parallel` = in-flight, cache
  off) on a broker, driven by `bridge.client.Study`: ask `in_flight` trials, then one new trial per result
  (ask-and-tell), until `--trials` were told. Measured from the first ask to the last tell; `bridge serve`'s
  start-up and the client's connection are not counted (a study runs for longer than one start-up).

Unless `--bootstrap` (or BRIDGE_KAFKA_BOOTSTRAP) names a broker, one is started for the run. Rows are repeated
(`--repeat`, order reversed every other time); medians reported. Output: JSON lines on stdout and
benchmarks/results/optuna.json.

    python benchmarks/optuna_study.py [--trials 200] [--in-flight 4] [--repeat 3] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from serve_throughput import BOOTSTRAP_ENV, broker, create_topics, delete_topics

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "trial"
TRIAL = """\
import sys
from bridge.tracking import log_outputs
x, y = float(sys.argv[1]), float(sys.argv[2])
loss = (x - 2.0) ** 2 + (y + 1.0) ** 2
log_outputs(loss=loss)
print(loss)
"""


def log(msg: str) -> None:
    print(f"optuna_study: {msg}", file=sys.stderr, flush=True)


def sampler(seed: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(seed=seed)


def space() -> dict[str, Any]:
    from optuna.distributions import FloatDistribution

    return {"x": FloatDistribution(-10, 10), "y": FloatDistribution(-10, 10)}


def in_process(script: Path, trials: int, in_flight: int, seed: int) -> dict[str, Any]:
    """Optuna's own parallel loop, each trial the subprocess."""
    import optuna

    def objective(trial: Any) -> float:
        x, y = trial.suggest_float("x", -10, 10), trial.suggest_float("y", -10, 10)
        out = subprocess.run([sys.executable, str(script), str(x), str(y)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    study = optuna.create_study(direction="minimize", sampler=sampler(seed))
    began = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=in_flight)
    return {"seconds": time.perf_counter() - began, "best": study.best_value, "trials": len(study.trials)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bridge_config(bootstrap: str, root: Path, script: Path, in_flight: int) -> tuple[Path, dict[str, str], int]:
    prefix = f"o{uuid.uuid4().hex[:10]}"
    topics = {
        name: f"{prefix}.{name}"
        for name in ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
    }
    port = _free_port()
    component = {
        "kind": "component",
        "name": TEMPLATE,
        "inputs": [{"name": "x", "type": "float"}, {"name": "y", "type": "float"}],
        "outputs": [{"name": "loss", "type": "float"}],
        "run": {
            "kind": "job",
            "container": {"image": "python", "command": ["python3", str(script)], "args": ["{{ x }}", "{{ y }}"]},
        },
    }
    data = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}-group"},
        "topics": topics,
        "batching": {"linger_ms": 0, "max_configs": 64},
        "executor": {"kind": "local", "max_parallel": in_flight},
        "http": {"host": "127.0.0.1", "port": port},
        "workdir": str(root / "work"),
        "templates": {
            TEMPLATE: {
                "component": component,
                "matrix": {"kind": "mapping", "concurrency": in_flight},
                "cache": {"disable": True},
            }
        },
    }
    path = root / "bridge.yaml"
    path.write_text(json.dumps(data))
    return path, topics, port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def through_bridge(
    bootstrap: str, tmp: Path, script: Path, trials: int, in_flight: int, seed: int
) -> dict[str, Any]:
    """`bridge serve` in its own process, driven by `Study`: one new trial per result."""
    import optuna

    from bridge.client import Study
    from bridge.config.settings import load_settings

    root = Path(tempfile.mkdtemp(dir=tmp, prefix="bridge-"))
    config, topics, port = bridge_config(bootstrap, root, script, in_flight)
    await create_topics(bootstrap, list(topics.values()))
    with (root / "bridge.log").open("wb") as errors:
        serve = await asyncio.create_subprocess_exec(
            *(str(ROOT / ".venv" / "bin" / "bridge"), "--log-level", "warning", "serve", "-c", str(config)),
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(_ready, port):
            if serve.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge serve did not become ready: {(root / 'bridge.log').read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        study = optuna.create_study(direction="minimize", sampler=sampler(seed))
        dist = space()
        async with Study(load_settings(config), study=f"bench-{uuid.uuid4().hex[:6]}", template=TEMPLATE) as bridge:
            began = time.perf_counter()
            asked: dict[str, Any] = {}
            for _ in range(min(in_flight, trials)):
                trial = study.ask(dist)
                asked[await bridge.ask(trial.params)] = trial
            told = 0
            async for result in bridge.results(timeout=120):
                trial = asked.pop(str(result.suggestion_id))
                loss = result.outputs.get("loss")
                if result.status.value == "succeeded" and isinstance(loss, float):
                    study.tell(trial, loss)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                told += 1
                if told + len(asked) < trials:
                    trial = study.ask(dist)
                    asked[await bridge.ask(trial.params)] = trial
            seconds = time.perf_counter() - began
        return {"seconds": seconds, "best": study.best_value, "trials": told}
    finally:
        serve.terminate()
        await asyncio.wait_for(serve.wait(), timeout=90)
        await delete_topics(bootstrap, list(topics.values()))


def _run(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    return asyncio.run(coroutine)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--in-flight", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", default=os.environ.get(BOOTSTRAP_ENV), help="use this broker, start none")
    args = p.parse_args()
    from bridge.logs import configure

    configure("warning")
    samples: dict[str, list[dict[str, Any]]] = {"in_process": [], "bridge": []}
    load = [os.getloadavg()[0]]
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-optuna-") as d:
        tmp = Path(d)
        script = tmp / "trial.py"
        script.write_text(TRIAL)
        for r in range(args.repeat):
            seed = args.seed + r
            phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("in_process", partial(in_process, script, args.trials, args.in_flight, seed)),
                (
                    "bridge",
                    partial(_run, through_bridge(bootstrap, tmp, script, args.trials, args.in_flight, seed)),
                ),
            ]
            for name, phase in phases if r % 2 == 0 else reversed(phases):
                sample = phase()
                samples[name].append(sample)
                log(f"repeat {r + 1}/{args.repeat} {name}: {sample['seconds']:.2f} s, best {sample['best']:.4f}")
            load.append(os.getloadavg()[0])
    base = statistics.median(s["seconds"] for s in samples["in_process"])
    ours = statistics.median(s["seconds"] for s in samples["bridge"])
    row = {
        "row": "optuna_study",
        "trials": args.trials,
        "in_flight": args.in_flight,
        "repeat": args.repeat,
        "in_process_s": round(base, 3),
        "bridge_s": round(ours, 3),
        "ratio": round(ours / base, 3),
        "added_ms_per_trial": round(1000 * (ours - base) * args.in_flight / args.trials, 1),
        "best_in_process": [round(s["best"], 4) for s in samples["in_process"]],
        "best_bridge": [round(s["best"], 4) for s in samples["bridge"]],
        "samples_in_process_s": [round(s["seconds"], 3) for s in samples["in_process"]],
        "samples_bridge_s": [round(s["seconds"], 3) for s in samples["bridge"]],
        "loadavg_1m": [round(x, 1) for x in load],
    }
    print(json.dumps(row))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "optuna.json").write_text(json.dumps([row], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
