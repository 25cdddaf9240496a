"""The `bridge` command: `run` and `check` a polyaxonfile, `serve` the Kafka bridge, and its companions."""

# The docstring above is `bridge --help`'s description. This module holds the parser and `main`; the handlers are in
# cli_local.py (check, run) and cli_serve.py (serve, submit, tail, schema).

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from bridge import __version__, logs
from bridge.cli_local import cmd_check, cmd_run
from bridge.cli_serve import cmd_schema, cmd_serve, cmd_submit, cmd_tail
from bridge.errors import BridgeError, ComponentFetchError, InvalidInput, Retryable
from bridge.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID

log = structlog.get_logger(__name__)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# ---- flags shared by several commands -------------------------------------------------------------------


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
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs run: processes of this machine (default), or Ray work on the cluster at --address",
    )
    run.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster of --executor ray: host:port or ray://host:10001 (default: $RAY_ADDRESS)",
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
