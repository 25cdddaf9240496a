"""The `bridge` command: `run` and `check` a polyaxonfile, `serve` the Kafka bridge, and its companions."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from bridge import __version__, logs
from bridge.errors import BridgeError, ComponentFetchError, InvalidInput, Retryable

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def _params(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"-P takes name=value, got `{pair}`")
        out[name.strip()] = value
    return out


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# ---- bridge check ---------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a polyaxonfile and print the runs it expands to."""
    from bridge.console import print_runs
    from bridge.polyaxon import expand_runs, load_operation

    op = load_operation(args.file, params=_params(args.param))
    values = (op.matrix.values if op.matrix and op.matrix.values is not None else None) or [{}]
    runs = expand_runs(op, [dict(v) for v in values], source=str(args.file))
    print_runs(runs)
    print(f"{args.file}: valid, {len(runs)} run(s)", file=sys.stderr)
    return EXIT_OK


# ---- bridge run ------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Run a polyaxonfile's operation on this machine."""
    from bridge.plan import plan_local
    from bridge.polyaxon import load_operation

    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidInput("--concurrency must be a positive integer")
    path = Path(args.file)
    op = load_operation(path, params=_params(args.param))
    plan = plan_local(op, source=str(path), cwd=path.resolve().parent, concurrency=args.concurrency)
    return asyncio.run(_run_plan(plan, Path(args.workdir), args.output))


async def _run_plan(plan: object, workdir: Path, output: str) -> int:
    from bridge.cache import FileCache
    from bridge.console import ProgressListener, print_results
    from bridge.executors.local import LocalExecutor
    from bridge.ledger import FileLedger
    from bridge.plan import OperationPlan
    from bridge.scheduler import OperationRunner, Runtime

    assert isinstance(plan, OperationPlan)
    matrix_concurrency = plan.operation.matrix.concurrency if plan.operation.matrix else None
    cap = plan.concurrency or matrix_concurrency or os.cpu_count() or 1
    runtime = Runtime(
        # The user's own file on the user's own machine: runs see the user's environment (CUDA_VISIBLE_DEVICES,
        # data paths, ...), all but the bridge's BRIDGE_* settings, which never reach a run.
        executor=LocalExecutor(max_parallel=cap, env_passthrough=["*"]),
        ledger=FileLedger(workdir / "operations"),
        workdir=workdir,
        cache=FileCache(workdir / "cache"),
    )
    with ProgressListener(total=len(plan.runs), name=plan.name) as listener:
        runner = OperationRunner(plan, runtime, listener)
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal(signame: str) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                print(f"\n{signame}: stopping runs (again to kill them now)...", file=sys.stderr)
                runner.stop(f"interrupted by {signame}", interrupted=True, kind="interrupted")
            else:
                runtime.stop_grace_s = 0.0
                runner.stop(f"interrupted by {signame}", interrupted=True, kind="interrupted")

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            outcome = await runner.run()
        finally:
            await runtime.executor.close()  # nothing a run started outlives `bridge run`
    print_results(outcome.results, output)
    counts = outcome.counts()
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    reason = f"; early stopping: {outcome.early_stop.reason}" if outcome.early_stop else ""
    resumed = f" ({outcome.resumed} resumed from an earlier run)" if outcome.resumed else ""
    print(f"{plan.name}: {summary}{resumed}{reason}", file=sys.stderr)
    if outcome.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed_stop = outcome.early_stop is not None and outcome.early_stop.kind == "failure_early_stopping"
    return EXIT_FAILED if counts["failed"] or failed_stop else EXIT_OK


# ---- bridge serve / submit / tail / schema ---------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Any:
    from bridge.config import load_settings

    overrides = {
        "kafka.bootstrap_servers": getattr(args, "bootstrap_servers", None),
        "kafka.group_id": getattr(args, "group_id", None),
        "http.port": getattr(args, "http_port", None),
        "workdir": getattr(args, "workdir", None),
    }
    return load_settings(Path(args.config) if args.config else None, overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Kafka bridge until SIGTERM/SIGINT, then drain."""
    from bridge.kafka.service import BridgeService

    settings = _settings(args)
    service = BridgeService(settings, connect_timeout_s=args.connect_timeout)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(serve())
    if service.publish_failures:
        for failure in service.publish_failures:
            print(f"bridge: could not publish: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print("bridge: drained, bye", file=sys.stderr)
    return EXIT_OK


def _read_suggestions(args: argparse.Namespace) -> dict[str, Any]:
    import json

    import yaml

    text = sys.stdin.read() if args.file in (None, "-") else Path(args.file).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{args.file or '-'}: not JSON or YAML: {exc}") from None
    if isinstance(data, list):  # a bare list of suggestions, or of params dicts
        data = {"suggestions": [s if isinstance(s, dict) and "params" in s else {"params": s} for s in data]}
    if not isinstance(data, dict):
        raise InvalidInput(f"{args.file or '-'}: expected a suggestion message or a list of suggestions")
    message = {
        **data,
        "study": args.study or data.get("study"),
        "template": args.template or data.get("template"),
    }
    if args.iteration is not None:
        message["iteration"] = args.iteration
    json.dumps(message)  # only JSON values go on the wire
    return message


def cmd_submit(args: argparse.Namespace) -> int:
    """Publish one suggestion message."""
    from pydantic import ValidationError

    from bridge.client import BridgeClient
    from bridge.messages import SuggestionMessage

    settings = _settings(args)
    try:
        message = SuggestionMessage.model_validate(_read_suggestions(args))
    except ValidationError as exc:
        from bridge.messages import field_path

        first = exc.errors()[0]
        raise InvalidInput(f"{field_path(first['loc'])}: {first['msg']}") from None

    async def send() -> None:
        async with BridgeClient(
            kafka=settings.kafka, topics=settings.topics, connect_timeout_s=args.connect_timeout
        ) as client:
            await client.send(message)

    asyncio.run(send())
    for sid in message.suggestion_ids():
        print(sid)
    print(
        f"submitted {len(message.suggestions)} suggestion(s) for {message.study}/{message.template}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow the results and operations topics."""
    from bridge.kafka.tail import tail

    settings = _settings(args)
    try:
        asyncio.run(
            tail(
                settings,
                study=args.study,
                output=args.output,
                from_beginning=args.from_beginning,
                limit=args.limit,
            )
        )
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of every message, and the AsyncAPI document."""
    from bridge.schemas import write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    return EXIT_OK


def _kafka_flags(p: argparse.ArgumentParser, *, group: bool = False) -> None:
    p.add_argument("-c", "--config", default=os.environ.get("BRIDGE_CONFIG"), help="bridge.yaml")
    p.add_argument("--bootstrap-servers", default=None, help="overrides kafka.bootstrap_servers")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to retry an unreachable broker")
    if group:
        p.add_argument("--group-id", default=None, help="overrides kafka.group_id")


# ---- the parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """`bridge`'s arguments."""
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"suggestion-bridge {__version__}")
    parser.add_argument("--log-level", default=None, help="debug, info, warning (default), error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a polyaxonfile's mapping operation locally")
    run.add_argument("-f", "--file", required=True, help="the polyaxonfile (kind: operation)")
    run.add_argument(
        "-P",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an operation param (repeatable)",
    )
    run.add_argument("--concurrency", type=int, default=None, help="runs at once (overrides matrix.concurrency)")
    run.add_argument(
        "--workdir",
        default=os.environ.get("BRIDGE_WORKDIR", ".bridge"),
        help="where runs, the cache and resume state live (default .bridge)",
    )
    run.add_argument("--output", choices=("table", "jsonl"), default="table", help="results format on stdout")
    run.set_defaults(handler=cmd_run)

    check = sub.add_parser("check", help="validate a polyaxonfile and print its runs")
    check.add_argument("-f", "--file", required=True)
    check.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE")
    check.set_defaults(handler=cmd_check)

    serve = sub.add_parser("serve", help="serve the Kafka bridge until SIGTERM")
    _kafka_flags(serve, group=True)
    serve.add_argument("--http-port", type=int, default=None, help="overrides http.port")
    serve.add_argument("--workdir", default=None, help="overrides workdir")
    serve.set_defaults(handler=cmd_serve)

    submit = sub.add_parser("submit", help="publish a suggestion message")
    _kafka_flags(submit)
    submit.add_argument("--study", default=None)
    submit.add_argument("--template", default=None)
    submit.add_argument("--iteration", type=int, default=None)
    submit.add_argument(
        "-f", "--file", default=None, help="JSON or YAML: a message, or a list of suggestions; - for stdin"
    )
    submit.set_defaults(handler=cmd_submit)

    tail = sub.add_parser("tail", help="follow results and operations")
    _kafka_flags(tail)
    tail.add_argument("--study", default=None)
    tail.add_argument("--output", choices=("auto", "table", "jsonl"), default="auto")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--limit", type=int, default=None, help="stop after this many results")
    tail.set_defaults(handler=cmd_tail)

    schema = sub.add_parser("schema", help="write the JSON Schemas of every message")
    schema.add_argument("--out", default="schemas")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bridge` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        code: int = args.handler(args)
        return code
    except (InvalidInput, ComponentFetchError) as exc:
        _error(str(exc))
        return EXIT_INVALID
    except Retryable as exc:
        _error(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        _error(str(exc))
        return EXIT_INVALID
    except BridgeError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
