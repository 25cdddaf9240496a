"""`bridge run`'s operation on this machine: wire the scheduler to a local executor, the file ledger and the cache,
handle Ctrl-C, then report (table or JSON lines on stdout, a summary and the best run on stderr).

Forcing a rerun, and what each flag keeps:

    (none)       finished runs come from the resume state, others from the cache when a result is there
    --no-cache   the cache is not read; results of runs that do run are still written to it
    --fresh      the resume state is discarded too, so every run runs (and is cached again)

`--no-cache` writes what it runs because that is what Polyaxon's `--nocache` does: it skips the cache *check*
of this operation, and the runs it starts are the ones later operations with the same inputs reuse. After
editing a script, the new results are the ones worth reusing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bridge.app import build_executor
from bridge.config.sections import ExecutorSettings
from bridge.contract.results import StopReason
from bridge.engine.cache import CacheEntry, FileCache
from bridge.engine.plan import OperationPlan
from bridge.engine.runtime import Runtime
from bridge.engine.scheduler import OperationOutcome, OperationRunner
from bridge.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from bridge.local.console import ProgressListener, fmt_mapping, fmt_value, print_results
from bridge.local.file_ledger import FileLedger
from bridge.local.objective import Objective


class WriteOnlyCache(FileCache):
    """A cache that answers nothing but keeps what runs produce (`--no-cache`)."""

    def get(self, key: str, ttl_s: float | None) -> CacheEntry | None:
        """Never a hit; `put` is FileCache's, so a new result replaces what an earlier run left."""
        return None


@dataclass(frozen=True)
class RunOptions:
    """How `bridge run` treats what earlier runs left, where it writes, and how it reports."""

    workdir: Path
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    output: str = "table"
    no_cache: bool = False
    fresh: bool = False  # implies no_cache
    objective: Objective | None = None


async def run_plan(plan: OperationPlan, options: RunOptions) -> int:
    """Run the plan to its end and report it; the command's exit code."""
    workdir = options.workdir
    matrix_concurrency = plan.operation.matrix.concurrency if plan.operation.matrix else None
    cap = plan.concurrency or matrix_concurrency or os.cpu_count() or 1
    ledger = FileLedger(workdir / "operations")
    if options.fresh and ledger.discard(plan.operation_id):
        print(f"{plan.name}: --fresh: earlier results of this operation are ignored", file=sys.stderr)
    cache_type = WriteOnlyCache if options.no_cache or options.fresh else FileCache
    runtime = Runtime(
        # The user's own file on the user's own machine: runs see the user's environment (CUDA_VISIBLE_DEVICES,
        # data paths, ...), all but the bridge's BRIDGE_* settings, which never reach a run.
        executor=build_executor(options.executor, workdir=workdir, max_parallel=cap, env_passthrough=["*"]),
        ledger=ledger,
        cache=cache_type(workdir / "cache"),
    )
    with ProgressListener(total=len(plan.runs), name=plan.name) as listener:
        runner = OperationRunner(plan, runtime, listener)
        _on_interrupt(runner, runtime)
        try:
            outcome = await runner.run()
        finally:
            await runtime.executor.close()  # nothing a run started outlives `bridge run`
            await ledger.close()
    return _report(plan, outcome, options)


def _on_interrupt(runner: OperationRunner, runtime: Runtime) -> None:
    """First Ctrl-C (or SIGTERM): stop runs gracefully; the second: kill them now."""
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(signame: str) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print(f"\n{signame}: stopping runs (again to kill them now)...", file=sys.stderr)
        else:
            runtime.stop_grace_s = 0.0
        runner.stop(f"interrupted by {signame}", kind=StopReason.INTERRUPTED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)


def _report(plan: OperationPlan, outcome: OperationOutcome, options: RunOptions) -> int:
    objective = options.objective
    table_order = objective.rank(outcome.results) if objective is not None and options.output == "table" else None
    # JSON lines stay in mapping order: a program reading them matches them by index, not by rank.
    typed = {run.index: run.params for run in plan.runs}  # what `bridge check` shows of each run
    print_results(table_order or outcome.results, options.output, typed=typed)
    counts = outcome.counts()
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    reason = f"; early stopping: {outcome.early_stop.reason}" if outcome.early_stop else ""
    resumed = f" ({outcome.resumed} resumed from an earlier run)" if outcome.resumed else ""
    print(f"{plan.name}: {summary}{resumed}{reason}", file=sys.stderr)
    if objective is not None:
        print(best_run_line(objective, outcome), file=sys.stderr)
    if outcome.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed_stop = outcome.early_stop is not None and outcome.early_stop.kind == "failure_early_stopping"
    return EXIT_FAILED if counts["failed"] or failed_stop else EXIT_OK


def best_run_line(objective: Objective, outcome: OperationOutcome) -> str:
    """`best run: #2 loss=0.113 (learning_rate=0.003) [run id]`, or why there is none."""
    best = objective.best(outcome.results)
    if best is None:
        return f"best run: none (no run succeeded with a number for `{objective.metric}`; objective {objective})"
    params = fmt_mapping(best.params)
    return (
        f"best run: #{best.index} {objective.metric}={fmt_value(best.outputs[objective.metric])}"
        f" ({params}) [{best.run_id}]; objective {objective} from {objective.origin}"
    )
