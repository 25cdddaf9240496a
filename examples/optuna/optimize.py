"""Tune the quick-start model with Optuna's TPE, through a running `bridge serve`.

By default (`--mode objective`) it is an ordinary Optuna study with two lines changed, `study.optimize` running
`--batch` trials at once (`n_jobs`) until `--iterations` x `--batch` trials ran:

    objective = BridgeObjective("quick-start", space=space, metric="loss", config="bridge.yaml")
    study.optimize(objective, n_trials=20, n_jobs=4)

Each trial is one suggestion; the run's per-epoch loss feeds the study's MedianPruner, which stops the runs it
prunes through the bridge. For those who ask and tell by hand, `--mode async` keeps `--batch` trials in flight
with `bridge.client.Study` (a new trial as each result arrives), and `--mode batch` asks Optuna for a batch of
trials, publishes them as ONE suggestion message (so the bridge runs them as one mapping operation, where
early stopping compares them) and waits for all their results. Either way the ids are `trial-<number>`, and
Optuna is told each trial's validation loss:

    succeeded with a finite loss     -> COMPLETE with that value
    stopped (early stopping), skipped -> PRUNED
    failed, no loss, or no result in time -> FAIL

    python examples/optuna/optimize.py --bootstrap-servers 127.0.0.1:9092 --iterations 5 --batch 4 [--mode async]

It ends with the best params and loss, how many runs the bridge ran, served from its cache and stopped,
and whether the best loss beats the best of the first `--batch` trials (the search converges). Exit status: 0 it does;
1 nothing succeeded or the search did not improve on the first batch; 2 the bridge could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

EPOCHS = 5
CONFIG = Path(__file__).resolve().parents[1] / "quick-start" / "bridge.yaml"


def search_space() -> dict[str, Any]:
    """The quick-start component's inputs that the search tunes; `epochs` is fixed."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {
        "learning_rate": FloatDistribution(1e-4, 0.3, log=True),
        "dropout": FloatDistribution(0.0, 0.6),
        "conv_activation": CategoricalDistribution(["relu", "sigmoid", "tanh"]),
        "hidden1_size": IntDistribution(64, 1024),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optimize.py",
        description="Optuna TPE over the suggestion bridge: batches of trials in, losses out.",
    )
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092", help="Kafka (default %(default)s)")
    parser.add_argument(
        "--config",
        type=Path,
        default=CONFIG,
        help="the bridge's config, whose template checks each trial's params before it is sent (objective mode; "
        "default: the quick-start's; its broker is replaced by --bootstrap-servers)",
    )
    parser.add_argument(
        "--study",
        default=None,
        help="study name (default quick-start-tpe-<timestamp>: a fresh one per invocation, because a "
        "running bridge does not answer trial ids it has already seen under the same study)",
    )
    parser.add_argument("--template", default="quick-start", help="bridge template (default %(default)s)")
    parser.add_argument("--iterations", type=int, default=5, help="batches to run (default %(default)s)")
    parser.add_argument(
        "--batch", type=int, default=4, help="trials per batch, or in flight in async mode (default %(default)s)"
    )
    parser.add_argument(
        "--mode",
        choices=("objective", "async", "batch"),
        default="objective",
        help="objective: study.optimize(BridgeObjective(...), n_jobs=--batch); async: ask and tell, a new trial per "
        "result, --batch in flight; batch: a batch at a time (default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to await a trial's or a batch's results (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="TPE sampler seed (default %(default)s)")
    parser.add_argument(
        "--startup-trials",
        type=int,
        default=None,
        help="random trials before TPE models the results (default: one batch)",
    )
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to reach the bridge")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every trial's result")
    args = parser.parse_args(argv)
    for name in ("iterations", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.study is None:
        args.study = f"quick-start-tpe-{datetime.now():%Y%m%d-%H%M%S}"
    return args


def loss_of(result: Any) -> float | None:
    """A succeeded result's finite `loss` output, else None."""
    value = result.outputs.get("loss")
    if result.status.value != "succeeded" or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_params(params: Mapping[str, Any]) -> str:
    items = sorted(params.items())
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def make_study(args: argparse.Namespace) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this script prints its own summary lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # constant_liar
    sampler = optuna.samplers.TPESampler(
        seed=args.seed,
        n_startup_trials=args.startup_trials if args.startup_trials is not None else args.batch,
        multivariate=True,
        constant_liar=True,  # trials of one batch are asked before any is told: keep them apart
    )
    return optuna.create_study(study_name=args.study, direction="minimize", sampler=sampler)


def tell(study: Any, trial: Any, result: Any, batch: Counter[str]) -> float | None:
    """Tell Optuna what became of `trial` (its loss, pruned or failed) and count it; its loss, if any."""
    from optuna.trial import TrialState

    batch["cached" if result.cached else "ran" if result.attempt > 0 else "not run"] += 1
    batch[result.status.value] += 1
    trial.set_user_attr("run_id", result.run_id)
    trial.set_user_attr("cached", result.cached)
    loss = loss_of(result)
    if loss is not None:
        study.tell(trial, loss)
    elif result.status.value in ("stopped", "skipped"):
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    return loss


def show(args: argparse.Namespace, sid: str, trial: Any, result: Any, loss: float | None) -> None:
    """With -v, one line per trial told; `result` None: from the trial's user attributes (objective mode)."""
    if args.verbose:
        if result is None:
            why = f" ({trial.user_attrs['bridge_error']})" if "bridge_error" in trial.user_attrs else ""
            status, cached = (
                trial.user_attrs.get("bridge_status", trial.state.name.lower()),
                trial.user_attrs.get("bridge_cached", False),
            )
        else:
            why = f" ({result.error.type}: {result.error.message})" if result.error else ""
            status, cached = result.status.value, result.cached
        shown = f"loss={loss:.4f}" if loss is not None else status + why
        cached = " [cached]" if cached else ""
        print(f"    {sid}: {shown}{cached}  {fmt_params(trial.params)}", flush=True)


def suggest(trial: Any) -> dict[str, Any]:
    """One trial's params: the quick-start component's inputs that the search tunes (see `search_space`)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 0.3, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "conv_activation": trial.suggest_categorical("conv_activation", ["relu", "sigmoid", "tanh"]),
        "hidden1_size": trial.suggest_int("hidden1_size", 64, 1024),
    }


def optimize_objective(args: argparse.Namespace) -> int:
    """`--mode objective`: `study.optimize` with `BridgeObjective`, `--batch` trials at once."""
    import optuna
    from optuna.trial import TrialState

    from bridge.optuna import BridgeObjective

    study = make_study(args)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=args.batch, n_warmup_steps=1)
    total = args.iterations * args.batch
    print(
        f"study {args.study}: {total} trial(s) with study.optimize(BridgeObjective(...), n_jobs={args.batch}), "
        f"template {args.template!r}, bridge at {args.bootstrap_servers}",
        flush=True,
    )
    started = t0 = time.monotonic()

    def progress(study: Any, trial: Any) -> None:
        show(args, f"trial-{trial.number}", trial, None, trial.value if trial.state == TrialState.COMPLETE else None)
        ended = sum(t.state.is_finished() for t in study.trials)
        if ended % args.batch == 0:
            nonlocal t0
            done = [t for t in study.trials if t.state == TrialState.COMPLETE]
            so_far = f"{study.best_value:.4f} (trial-{study.best_trial.number})" if done else "none yet"
            print(f"trials {ended}/{total}: best so far {so_far} ({time.monotonic() - t0:.1f}s)", flush=True)
            t0 = time.monotonic()

    objective = BridgeObjective(
        args.template,
        space=suggest,
        metric="loss",
        config=args.config if args.config.is_file() else None,
        bootstrap_servers=args.bootstrap_servers,
        params={"epochs": EPOCHS},
        metadata={"optimizer": "optuna-tpe", "seed": args.seed},
        timeout_s=args.timeout,
        connect_timeout_s=args.connect_timeout,
    )
    with objective:
        study.optimize(objective, n_trials=total, n_jobs=args.batch, callbacks=[progress])
    counts: Counter[str] = Counter()
    for trial in study.trials:
        status = trial.user_attrs.get("bridge_status")
        counts[status or "missing"] += 1
        if status is not None:
            counts["cached" if trial.user_attrs.get("bridge_cached") else "ran"] += 1
    first = [t.value for t in study.trials[: args.batch] if t.state == TrialState.COMPLETE]
    return report(study, counts, min(first, default=math.inf), time.monotonic() - started)


async def optimize_async(args: argparse.Namespace) -> int:
    """`--batch` trials in flight: ask that many, then one new trial per result (Optuna's ask-and-tell)."""
    from optuna.trial import TrialState

    from bridge.client import ResultsTimeout, Study

    study = make_study(args)
    space = search_space()
    total = args.iterations * args.batch
    counts: Counter[str] = Counter()
    first_batch_best = best = math.inf
    started = t0 = time.monotonic()
    print(
        f"study {args.study}: {total} trial(s), {args.batch} in flight (a new one per result), template "
        f"{args.template!r}, bridge at {args.bootstrap_servers}",
        flush=True,
    )
    bridge = Study(
        study=args.study,
        template=args.template,
        bootstrap_servers=args.bootstrap_servers,
        params={"epochs": EPOCHS},
        metadata={"optimizer": "optuna-tpe", "seed": args.seed},
        connect_timeout_s=args.connect_timeout,
    )
    async with bridge:
        asked: dict[str, Any] = {}

        async def ask_one() -> None:
            trial = study.ask(space)
            asked[await bridge.ask(trial.params, suggestion_id=f"trial-{trial.number}")] = trial

        for _ in range(min(args.batch, total)):
            await ask_one()
        told = 0
        try:
            async for result in bridge.results(timeout=args.timeout):
                sid = str(result.suggestion_id)
                trial = asked.pop(sid)
                loss = tell(study, trial, result, counts)
                show(args, sid, trial, result, loss)
                told += 1
                best = min(best, loss if loss is not None else math.inf)
                if told == args.batch:
                    first_batch_best = best
                if told % args.batch == 0:
                    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
                    so_far = f"{study.best_value:.4f} (trial-{study.best_trial.number})" if done else "none yet"
                    print(f"trials {told}/{total}: best so far {so_far} ({time.monotonic() - t0:.1f}s)", flush=True)
                    t0 = time.monotonic()
                if told + len(asked) < total:
                    await ask_one()
        except ResultsTimeout as exc:
            print(f"  warning: {exc}; telling Optuna those trials failed", file=sys.stderr, flush=True)
            for trial in asked.values():
                study.tell(trial, state=TrialState.FAIL)
            counts["missing"] += len(asked)
    if told < args.batch:
        first_batch_best = best
    return report(study, counts, first_batch_best, time.monotonic() - started)


async def optimize(args: argparse.Namespace) -> int:
    """`--mode batch`: a batch of trials per suggestion message, all of its results awaited before the next."""
    from optuna.trial import TrialState

    from bridge.client import BridgeClient, ResultsTimeout

    study = make_study(args)
    space = search_space()
    counts: Counter[str] = Counter()
    first_batch_best = math.inf
    started = time.monotonic()
    print(
        f"study {args.study}: {args.iterations} iteration(s) of {args.batch} trial(s), template "
        f"{args.template!r}, bridge at {args.bootstrap_servers}",
        flush=True,
    )

    async with BridgeClient(args.bootstrap_servers, connect_timeout_s=args.connect_timeout) as bridge:
        for iteration in range(1, args.iterations + 1):
            t0 = time.monotonic()
            trials = [study.ask(space) for _ in range(args.batch)]
            by_id = {f"trial-{t.number}": t for t in trials}
            ids = await bridge.submit(
                args.study,
                args.template,
                [{"id": sid, "params": t.params} for sid, t in by_id.items()],
                iteration=iteration,
                params={"epochs": EPOCHS},
                metadata={"optimizer": "optuna-tpe", "seed": args.seed},
            )
            try:
                results = await bridge.results(args.study, ids, timeout=args.timeout)
            except ResultsTimeout as exc:
                print(
                    f"  warning: {exc}; telling Optuna those trials failed (a bridge answers a trial id only "
                    "once per study: reusing --study against the same bridge gets no results)",
                    file=sys.stderr,
                    flush=True,
                )
                results = exc.received

            batch: Counter[str] = Counter()
            batch_best = math.inf
            for sid, trial in by_id.items():
                result = results.get(sid)
                if result is None:
                    batch["missing"] += 1
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                loss = tell(study, trial, result, batch)
                if loss is not None:
                    batch_best = min(batch_best, loss)
                show(args, sid, trial, result, loss)
            counts.update(batch)
            if iteration == 1:
                first_batch_best = batch_best

            done = [t for t in study.trials if t.state == TrialState.COMPLETE]
            best = f"{study.best_value:.4f} (trial-{study.best_trial.number})" if done else "none yet"
            shown_batch = f"{batch_best:.4f}" if math.isfinite(batch_best) else "none"
            print(
                f"iteration {iteration}/{args.iterations}: batch best loss {shown_batch}, "
                f"best so far {best}; "
                f"{batch['ran']} ran, {batch['cached']} cached, {batch['stopped']} stopped, "
                f"{batch['failed'] + batch['missing']} failed ({time.monotonic() - t0:.1f}s)",
                flush=True,
            )

    return report(study, counts, first_batch_best, time.monotonic() - started)


def report(study: Any, counts: Counter[str], first_batch_best: float, elapsed_s: float) -> int:
    from optuna.trial import TrialState

    print(
        f"\nbridge: {counts['ran']} run(s) ran, {counts['cached']} served from cache, "
        f"{counts['stopped']} stopped (pruned or early stopping); {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['missing']} without a result ({elapsed_s:.1f}s)"
    )
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        print("no trial succeeded: nothing to report (see the bridge's log)", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"best trial: trial-{best.number}, loss {best.value:.4f}")
    print(f"best params: {fmt_params(best.params)}, epochs={EPOCHS}")
    converged = best.value < first_batch_best
    first = f"{first_batch_best:.4f}" if math.isfinite(first_batch_best) else "none (no trial succeeded)"
    verdict = "yes" if converged else "NO"
    print(f"first batch best loss {first} -> final best {best.value:.4f}: beats the first batch: {verdict}")
    return 0 if converged else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from aiokafka.errors import KafkaError

    from bridge.errors import ConfigError, Retryable

    unreachable: tuple[type[BaseException], ...] = (Retryable, KafkaError, TimeoutError, OSError)
    if args.mode == "objective":
        from bridge.optuna import BridgeUnreachable

        unreachable += (BridgeUnreachable,)
    try:
        if args.mode == "objective":
            return optimize_objective(args)
        return asyncio.run(optimize_async(args) if args.mode == "async" else optimize(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"optimize.py: {exc}", file=sys.stderr)
        return 2
    except unreachable as exc:  # no broker, or no bridge made its topics
        print(f"optimize.py: cannot reach the bridge at {args.bootstrap_servers}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
