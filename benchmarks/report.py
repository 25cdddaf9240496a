"""Write the figures of the last `make bench` (benchmarks/results/*.json) into BENCHMARKS.md's table.

Only the part between `<!-- figures:begin -->` and `<!-- figures:end -->` is rewritten; the rest of the file (what
bounds each figure, how it was measured) is prose kept by hand. A benchmark that has not been run leaves its row
saying so.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
PY = ".venv/bin/python benchmarks"


def _load(name: str) -> list[dict[str, Any]]:
    path = RESULTS / name
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def _when(name: str) -> str:
    path = RESULTS / name
    if not path.exists():
        return "not run"
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _row(
    target: str, figure: str, baseline: str, ratio: str, goal: str, command: str, date: str, status: str = ""
) -> str:
    return f"| {target} | {figure} | {baseline} | {ratio} | {goal} | {status} | `{command}` | {date} |"


def _status(met: bool, bound: str) -> str:
    """`met`, or `not met:` and what bounds the figure, from the same run's measurements."""
    return "met" if met else f"not met: {bound}"


def rows() -> list[str]:
    out = [
        "| target | figure | baseline, same run | ratio | goal | met? what bounds it (same run) | reproduce | date |",
        "|---|---|---|---|---|---|---|---|",
    ]
    serve = {r["row"]: r for r in _load("serve.json")}
    when = _when("serve.json")
    cmd = f"{PY}/serve_throughput.py"
    if "bridge" in serve:
        b, raw = serve["bridge"], serve["spawn_raw"]
        cpu = {name: row.get("cpu_ms_per_result") for name, row in serve.items()}
        loop = (
            f"the event loop's CPU, {cpu['bridge']} ms a result (spawn_executor {cpu.get('spawn_executor')},"
            f" unguarded {cpu.get('bridge_unguarded')}, spawn_raw {cpu.get('spawn_raw')})"
        )
        out.append(
            _row(
                "P1 throughput",
                f"{b['throughput_per_s']} results/s",
                f"spawn_raw {raw['throughput_per_s']}/s",
                f"{b['ratio_vs_spawn_raw']}",
                ">= 0.6",
                cmd,
                when,
                _status(b["ratio_vs_spawn_raw"] >= 0.6, loop),
            )
        )
        if "bridge_unguarded" in serve:
            u = serve["bridge_unguarded"]
            out.append(
                _row(
                    "P1 cost of the guarantees",
                    f"{b['throughput_per_s']} results/s",
                    f"ledger + transactions off: {u['throughput_per_s']}/s",
                    f"cost {100 * b['guarantees_cost']:.0f}%",
                    "<= 20%",
                    cmd,
                    when,
                    _status(
                        b["guarantees_cost"] <= 0.2,
                        f"CPU {cpu['bridge']} against {cpu.get('bridge_unguarded')} ms a result: transactions and"
                        " ledger records",
                    ),
                )
            )
    p2 = serve.get("p2_latency")
    if p2 is not None:
        for key, value in p2.items():
            if not key.startswith("at_"):
                continue
            rate = key[3:].replace("_per_s", "/s")
            lat = value["publish_to_run_start_ms"]
            split = value["stages_ms"]
            goal = "p50 <= 5 ms, p99 <= 25 ms" if rate == "100/s" else "reported"
            to_dispatch, to_start = split["to_dispatch"]["p50"], split["dispatch_to_start"]["p50"]
            if rate != "100/s":
                status = f"reported (utilisation {value.get('utilisation', '?')}: queueing past it)"
            else:
                status = _status(
                    lat["p50"] <= 5 and lat["p99"] <= 25,
                    f"p50 {to_dispatch} ms consume, intake, batch + {to_start} ms folders, files and spawn",
                )
            out.append(
                _row(
                    f"P2 publish -> run start at {rate}, linger 0",
                    f"p50 {lat['p50']} ms, p99 {lat['p99']} ms (p50 to dispatch {split['to_dispatch']['p50']} ms"
                    f" + dispatch to start {split['dispatch_to_start']['p50']} ms)",
                    "n/a (absolute)",
                    f"{value.get('utilisation', '?')} of the throughput measured in the same run",
                    goal,
                    cmd,
                    when,
                    status,
                )
            )
    out += one_study_rows()
    overhead = {r["workload"]: r for r in _load("overhead.json")}
    when = _when("overhead.json")
    if "tiny" in overhead:
        t = overhead["tiny"]
        out.append(
            _row(
                f"P3 bridge run, {t['runs']} trivial runs at {t['concurrency']}",
                f"{t['bridge_s']} s",
                f"bare asyncio loop {t['baseline_s']} s",
                f"{t['ratio']}",
                "<= 1.1",
                f"{PY}/run_overhead.py --skip-quick-start",
                when,
                _status(
                    t["ratio"] <= 1.1,
                    f"{t['overhead_s']} s over the loop: the interpreter and imports, then"
                    f" {1000 * t['overhead_per_run_s']:.1f} ms a run",
                ),
            )
        )
    if "cli_start" in overhead:
        c = overhead["cli_start"]
        out.append(
            _row(
                "P3 bridge --version / --help",
                f"{c['version_s']} s / {c['help_s']} s",
                f"python -c pass {c['python_pass_s']} s",
                "",
                "<= 0.15 s",
                f"{PY}/run_overhead.py",
                when,
                _status(max(c["version_s"], c["help_s"]) <= 0.15, "start-up imports"),
            )
        )
    for o in _load("optuna.json"):
        out.append(
            _row(
                f"P5 Optuna TPE, {o['trials']} trials, {o['in_flight']} in flight",
                f"through Kafka + bridge serve {o['bridge_s']} s",
                f"in-process n_jobs={o['in_flight']} {o['in_process_s']} s",
                f"{o['ratio']}",
                "<= 1.5",
                f"{PY}/optuna_study.py",
                _when("optuna.json"),
                _status(
                    o["ratio"] <= 1.5,
                    f"{o.get('added_ms_per_trial')} ms added a trial: the broker, bridge and client share the cores"
                    " with the trials",
                ),
            )
        )
    for m in _load("memory.json"):
        peak = m.get("peak_rss_mb")
        out.append(
            _row(
                "memory, 1,000,000 suggestions backlog",
                f"peak RSS {peak:.1f} MB" if isinstance(peak, int | float) else str(peak),
                "n/a (absolute)",
                "",
                "<= 200 MB",
                f"{PY}/memory_backlog.py",
                _when("memory.json"),
                _status(isinstance(peak, int | float) and peak <= 200, "peak RSS"),
            )
        )
    return out


def one_study_rows() -> list[str]:
    """Issue 18's load: one study, one-suggestion messages, `bridge serve` as its own process, every process's CPU."""
    out: list[str] = []
    when, cmd = _when("one_study.json"), f"{PY}/one_study.py"
    for o in _load("one_study.json"):
        rate, cap = o["rate_phase"], o["capacity_phase"]
        lat = rate["latency_publish_to_start"]
        stages = rate["stages_p50_p99_ms"]
        tenths = lat["p50_by_tenth_ms"]
        growth = tenths[-1] / max(tenths[0], 0.1)
        split = (
            f"p50 {stages['to_dispatch'][0]} ms consume, intake, grant + {stages['dispatch_to_start'][0]} ms folders,"
            f" files and spawn"
        )
        out.append(
            _row(
                f"one study at {o['rate']:g}/s, serve a process: publish -> run start",
                f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms; p50 by tenth of {o['seconds']:g} s: {tenths}",
                "n/a (absolute)",
                f"last tenth / first {growth:.2f}",
                "p50 <= 10 ms, p99 <= 40 ms, no growth",
                cmd,
                when,
                _status(lat["p50_ms"] <= 10 and lat["p99_ms"] <= 40 and growth <= 1.5, split),
            )
        )
        cpu = rate["cpu_ms_per_result"]
        machine = cpu["bridge_broker_client"]
        threads = ", ".join(f"{k} {v}" for k, v in list(rate.get("broker_threads_ms_per_result", {}).items())[:3])
        out.append(
            _row(
                f"one study at {o['rate']:g}/s: CPU per result, serve + broker + client",
                f"{machine} ms (serve {cpu['serve']}, broker {cpu.get('broker')}, client {cpu['client']}; the runs"
                f" {cpu['runs']})",
                "n/a (absolute, from /proc)",
                f"{rate['transactions_per_result']} transactions a result",
                "<= 3 ms",
                cmd,
                when,
                _status(machine <= 3, f"the broker's threads, ms a result: {threads}"),
            )
        )
        out.append(
            _row(
                "one study's capacity, instant runs",
                f"{cap['results_per_s']} results/s"
                f" ({cap['cpu_ms_per_result']['bridge_broker_client']} ms CPU a result)",
                "n/a (absolute)",
                "",
                ">= 400/s",
                cmd,
                when,
                _status(
                    cap["results_per_s"] >= 400,
                    f"serve's CPU {cap['cpu_ms_per_result']['serve']} ms a result and the runs'"
                    f" {cap['cpu_ms_per_result']['runs']} ms on 2 cores",
                ),
            )
        )
    return out


def main() -> int:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"report.py: {DOC} has no {BEGIN} ... {END} section", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(rows()) + "\n" + END + tail)
    print(f"report.py: figures written to {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
