"""`bridge check` and `bridge run`: a polyaxonfile from a file, stdin or a URL, validated or run on this machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge.errors import EXIT_INVALID, EXIT_OK, InvalidInput


def _params(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"-P takes name=value, got `{pair}`")
        out[name.strip()] = value
    return out


def _load(args: argparse.Namespace) -> tuple[Any, int]:
    """The operation of `-f FILE`, `-f -` or `--url URL`, and how many warnings about it were printed on stderr."""
    from bridge.local.hints import param_warnings
    from bridge.local.source import load

    overrides = _params(args.param)
    loaded = load(file=args.file, url=args.url, params=overrides)
    # Keys Polyaxon accepts that do nothing here and odd values, then params nothing declares.
    warnings = [*map(str, loaded.operation.warnings), *param_warnings(loaded.operation, overrides)]
    for line in warnings:
        print(f"warning: {loaded.source}: {line}", file=sys.stderr)
    return loaded, len(warnings)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a polyaxonfile and print the runs it expands to."""
    from bridge.local.console import print_runs
    from bridge.polyaxon import expand_runs

    loaded, warned = _load(args)
    op = loaded.operation
    # As `bridge run` and Polyaxon: a mapping's values are its runs (`values: []` is none); no mapping is one run.
    values = [dict(v) for v in op.matrix.values or []] if op.matrix is not None else [{}]
    runs = expand_runs(op, values, source=loaded.source)
    print_runs(runs, given=[set(op.params or {}) | set(v) for v in values])
    if not warned:
        print(f"{loaded.source}: valid, {len(runs)} run(s)", file=sys.stderr)
        return EXIT_OK
    if args.strict:
        print(f"{loaded.source}: invalid with --strict: {warned} warning(s) above", file=sys.stderr)
        return EXIT_INVALID
    print(f"{loaded.source}: valid with {warned} warning(s) above, {len(runs)} run(s)", file=sys.stderr)
    return EXIT_OK


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """Imports and loading, before any run starts: no garbage collection while they build what lives until the
    end (modules, models, the plan), then all of it frozen out of later collections. A full collection over those
    objects finds nothing to free, yet cost as much as a tenth of `bridge run`'s own start-up."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def cmd_run(args: argparse.Namespace) -> int:
    """Run a polyaxonfile's operation on this machine."""
    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidInput("--concurrency must be a positive integer")
    with _starting():
        from bridge.config.sections import ExecutorSettings
        from bridge.engine.plan import plan_local
        from bridge.local.objective import objective_of, undeclared_metric
        from bridge.local.run import RunOptions, run_plan

        loaded, _ = _load(args)
        objective = objective_of(loaded.operation, args.objective)
        if objective is not None and (warning := undeclared_metric(objective, loaded.operation)):
            print(f"warning: {warning}", file=sys.stderr)
        plan = plan_local(loaded.operation, source=loaded.source, cwd=loaded.cwd, concurrency=args.concurrency)
        options = RunOptions(
            workdir=Path(args.workdir),
            executor=ExecutorSettings(kind=args.executor, address=args.address),
            output=args.output,
            no_cache=args.no_cache,
            fresh=args.fresh,
            objective=objective,
        )
    return asyncio.run(run_plan(plan, options))
