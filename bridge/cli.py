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


# ---- bridge check / run ----------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Any:
    """The operation of `-f FILE`, `-f -` or `--url URL`, with its param warnings printed on stderr."""
    from bridge.opsource import load
    from bridge.param_hints import param_warnings

    overrides = _params(args.param)
    loaded = load(file=args.file, url=args.url, params=overrides)
    for warning in loaded.operation.warnings:  # keys Polyaxon accepts that do nothing here, odd values
        print(f"warning: {loaded.source}: {warning}", file=sys.stderr)
    for line in param_warnings(loaded.operation, overrides):
        print(f"warning: {loaded.source}: {line}", file=sys.stderr)
    return loaded


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a polyaxonfile and print the runs it expands to."""
    from bridge.console import print_runs
    from bridge.polyaxon import expand_runs

    loaded = _load(args)
    op = loaded.operation
    # As `bridge run` and Polyaxon: a mapping's values are its runs (`values: []` is none); no mapping is one run.
    values = [dict(v) for v in op.matrix.values or []] if op.matrix is not None else [{}]
    runs = expand_runs(op, values, source=loaded.source)
    print_runs(runs)
    print(f"{loaded.source}: valid, {len(runs)} run(s)", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a polyaxonfile's operation on this machine."""
    from bridge.local_run import RunOptions, run_plan
    from bridge.objective import objective_of, undeclared_metric
    from bridge.plan import plan_local

    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidInput("--concurrency must be a positive integer")
    loaded = _load(args)
    objective = objective_of(loaded.operation, args.objective)
    if objective is not None and (warning := undeclared_metric(objective, loaded.operation)):
        print(f"warning: {warning}", file=sys.stderr)
    plan = plan_local(loaded.operation, source=loaded.source, cwd=loaded.cwd, concurrency=args.concurrency)
    options = RunOptions(
        workdir=Path(args.workdir),
        output=args.output,
        no_cache=args.no_cache,
        fresh=args.fresh,
        objective=objective,
    )
    return asyncio.run(run_plan(plan, options))


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
    from bridge.app import build_service

    service = build_service(_settings(args), connect_timeout_s=args.connect_timeout)

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
        client = BridgeClient(kafka=settings.kafka, topics=settings.topics, connect_timeout_s=args.connect_timeout)
        # Not `async with`: a start that fails never reaches __aexit__, and its producer would be left unclosed.
        try:
            await client.start()
            await client.send(message)
        finally:
            await client.stop()

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
                connect_timeout_s=args.connect_timeout,
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
    p.add_argument(
        "-c",
        "--config",
        default=os.environ.get("BRIDGE_CONFIG"),
        metavar="FILE",
        help="the bridge's YAML config (default: $BRIDGE_CONFIG; see bridge/config.py for every key)",
    )
    p.add_argument(
        "--bootstrap-servers", default=None, metavar="HOST:PORT,...", help="the Kafka brokers; overrides the config"
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to retry a broker that cannot be reached before giving up (default 30)",
    )
    if group:
        p.add_argument("--group-id", default=None, help="the consumer group (kafka.group_id); overrides the config")


def _source_flags(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-f", "--file", default=None, metavar="FILE", help="the polyaxonfile (kind: operation); - reads stdin"
    )
    where.add_argument(
        "--url",
        default=None,
        help="an http(s) URL of the polyaxonfile, fetched under urlRef's time and size limits; "
        "a relative pathRef in it is fetched from beside it",
    )
    p.add_argument(
        "-P",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an operation param, typed like the input it names (repeatable); a run's own mapping values win",
    )


# ---- the parser ------------------------------------------------------------------------------------------


def _command(sub: Any, name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.{' ' + details if details else ''}",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """`bridge`'s arguments."""
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"suggestion-bridge {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        metavar="LEVEL",
        help="debug, info, warning or error, on stderr (default: info for serve, warning otherwise)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        sub,
        "run",
        "run a polyaxonfile's mapping operation on this machine",
        "Progress goes to stderr, the results to stdout. Run the same command again to resume after an interrupt; "
        "--fresh runs everything again.",
    )
    _source_flags(run)
    run.add_argument(
        "--concurrency", type=int, default=None, metavar="N", help="runs at once (overrides matrix.concurrency)"
    )
    run.add_argument(
        "--workdir",
        default=os.environ.get("BRIDGE_WORKDIR", ".bridge"),
        metavar="DIR",
        help="where runs, the cache and the resume state live (default .bridge, or $BRIDGE_WORKDIR)",
    )
    run.add_argument(
        "--output",
        choices=("table", "jsonl"),
        default="table",
        help="results on stdout: a table (default), or one bridge.result/v1 JSON per line",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="do not answer runs from cached results (what runs is still cached for later)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="run every run again: ignore the cache and what earlier runs of this operation finished",
    )
    run.add_argument(
        "--objective",
        default=None,
        metavar="METRIC:min|max",
        help="rank runs by this output and name the best (default: the metric early stopping's metric)",
    )
    run.set_defaults(handler=cmd_run)

    check = _command(
        sub,
        "check",
        "validate a polyaxonfile and print the runs it expands to",
        "Nothing runs. Exit 0 when valid, 2 when not.",
    )
    _source_flags(check)
    check.set_defaults(handler=cmd_check)

    serve = _command(sub, "serve", "serve the Kafka bridge until SIGTERM or SIGINT, then drain")
    _kafka_flags(serve, group=True)
    serve.add_argument(
        "--http-port", type=int, default=None, help="/healthz, /readyz and /metrics; overrides http.port"
    )
    serve.add_argument("--workdir", default=None, metavar="DIR", help="runs, cache and ledger index; overrides workdir")
    serve.set_defaults(handler=cmd_serve)

    submit = _command(sub, "submit", "publish a suggestion message to the bridge")
    _kafka_flags(submit)
    submit.add_argument("--study", default=None, help="the study (the message key); overrides the file's")
    submit.add_argument("--template", default=None, help="a template registered in the bridge's config")
    submit.add_argument("--iteration", type=int, default=None, help="the optimizer's iteration, echoed in results")
    submit.add_argument(
        "-f", "--file", default=None, help="JSON or YAML: a message, or a list of suggestions; - or none for stdin"
    )
    submit.set_defaults(handler=cmd_submit)

    tail = _command(
        sub, "tail", "follow the results and operations topics", "A live table on a terminal, JSON lines otherwise."
    )
    _kafka_flags(tail)
    tail.add_argument("--study", default=None, help="only this study's results and operations")
    tail.add_argument(
        "--output", choices=("auto", "table", "jsonl"), default="auto", help="auto: a table on a terminal"
    )
    tail.add_argument("--from-beginning", action="store_true", help="from the topics' start, not only what comes next")
    tail.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="stop after N results (and the operation events committed before them)",
    )
    tail.set_defaults(handler=cmd_tail)

    schema = _command(sub, "schema", "write the JSON Schemas of every message and the AsyncAPI document")
    schema.add_argument("--out", default="schemas", metavar="DIR", help="the folder to write them to")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bridge` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # A service tells its life (ready, partitions, operations) at info; one-shot commands only what goes wrong.
    logs.configure(args.log_level or ("info" if args.command == "serve" else None))
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
