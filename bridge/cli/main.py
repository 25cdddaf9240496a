"""The `bridge` command: `run` and `check` a polyaxonfile, `serve` the Kafka bridge, and its companions."""

# The docstring above is `bridge --help`'s description. This module holds the parser and `main`; the handlers are in
# local.py (check, run), serve.py (serve, tail, schema), submit.py, ops.py (dlq, stop, logs) and dash.py, each
# imported when one of its commands runs; common.py holds what they share.

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bridge import __version__
from bridge.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    BridgeError,
    ComponentFetchError,
    InvalidInput,
    Retryable,
)

# Nothing heavy is imported here: `bridge --help` and `--version` answer from the parser alone (pydantic, jinja2,
# structlog and aiokafka take most of a second to import), and a command's handler module is imported when it runs.
Handler = Callable[[argparse.Namespace], int]


def _handler(module: str, name: str) -> Handler:
    """The command handler `module.name`, imported only when the command runs."""

    def handle(args: argparse.Namespace) -> int:
        fn: Handler = getattr(importlib.import_module(module), name)
        return fn(args)

    handle.__name__ = handle.__qualname__ = name
    return handle


cmd_run = _handler("bridge.cli.local", "cmd_run")
cmd_check = _handler("bridge.cli.local", "cmd_check")
cmd_serve = _handler("bridge.cli.serve", "cmd_serve")
cmd_submit = _handler("bridge.cli.submit", "cmd_submit")
cmd_tail = _handler("bridge.cli.serve", "cmd_tail")
cmd_schema = _handler("bridge.cli.serve", "cmd_schema")
cmd_dlq = _handler("bridge.cli.ops", "cmd_dlq")
cmd_stop = _handler("bridge.cli.ops", "cmd_stop")
cmd_logs = _handler("bridge.cli.ops", "cmd_logs")
cmd_dash = _handler("bridge.cli.dash", "cmd_dash")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# ---- flags shared by several commands -------------------------------------------------------------------


def _kafka_flags(p: argparse.ArgumentParser, *, group: bool = False) -> None:
    p.add_argument(
        "-c",
        "--config",
        default=os.environ.get("BRIDGE_CONFIG"),
        metavar="FILE",
        help="the bridge's YAML config (default: $BRIDGE_CONFIG; see bridge/config/settings.py for every key)",
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


def _ops_parsers(sub: Any) -> None:
    """`dlq`, `stop` and `logs`: what an operator uses to see refusals and act on runs."""
    dlq = _command(
        sub,
        "dlq",
        "show the dead letters: records the bridge refused, with their reason and field",
        "A table by default (reason, field path, source topic/partition@offset, study, message and a preview of the "
        "original bytes), or the bridge.deadletter/v1 messages as JSON lines.",
    )
    _kafka_flags(dlq)
    dlq.add_argument("--follow", action="store_true", help="keep showing new dead letters as they come")
    dlq.add_argument(
        "--output", choices=("table", "jsonl"), default="table", help="a table (default), or one JSON per line"
    )
    dlq.add_argument("--limit", type=int, default=None, metavar="N", help="stop after N dead letters")
    dlq.set_defaults(handler=cmd_dlq)

    stop = _command(
        sub,
        "stop",
        "stop a run or an operation through the bridge.control topic",
        "Then waits for the stopped run's final result (status stopped) and prints it. Exit 2 when the bridge "
        "refuses the stop (wrong token, another study's run).",
    )
    _kafka_flags(stop)
    stop.add_argument("run_id", nargs="?", default=None, metavar="RUN_ID", help="the run to stop")
    stop.add_argument("--operation", default=None, metavar="ID", help="stop every run of this operation")
    stop.add_argument("--suggestion", default=None, metavar="ID", help="stop the run of this suggestion id")
    stop.add_argument("--study", default=None, help="the study of what is stopped (required)")
    stop.add_argument("--token", default=None, help="the bridge's control.token (default: the config's)")
    stop.add_argument("--reason", default=None, help="why, shown in the stopped run's result")
    stop.add_argument(
        "--wait", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the final result (default 10)"
    )
    stop.set_defaults(handler=cmd_stop)

    logs_ = _command(
        sub,
        "logs",
        "print a run's stdout and stderr (its last attempt)",
        "From the work dir on this host: --workdir, or the bridge's (-c) for a served run, else .bridge (or "
        "$BRIDGE_WORKDIR), the default of `serve` and `run`. A served run's logs are on the host of the bridge that "
        "ran it.",
    )
    logs_.add_argument("run_id", metavar="RUN_ID", help="the run's id (in its result and in `bridge tail`)")
    logs_.add_argument(
        "-c", "--config", default=os.environ.get("BRIDGE_CONFIG"), metavar="FILE", help="the bridge's YAML config"
    )
    logs_.add_argument("--workdir", default=None, metavar="DIR", help="the work dir to look in")
    logs_.set_defaults(handler=cmd_logs)


def _dash_parser(sub: Any) -> None:
    """`dash`: the live web view."""
    dash = _command(
        sub,
        "dash",
        "serve a read-only live web view of the topics: studies, optimization history, runs, dead letters",
        "It reads the results, operations and dead-letter topics from the start of what they retain and shows new "
        "results as they come. Binds 127.0.0.1 unless told otherwise; with --token, the page asks for it.",
    )
    _kafka_flags(dash)
    dash.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8265, help="the port to listen on (default 8265; 0: any free one)")
    dash.add_argument(
        "--token",
        default=None,
        help="a token the page asks for: open it as /?token=T (default: $BRIDGE_DASH_TOKEN; none: no token)",
    )
    dash.add_argument(
        "--runs-per-study",
        type=int,
        default=200,
        metavar="N",
        help="the last N runs kept per study, with their params and progress (default 200); older runs stay counted",
    )
    dash.set_defaults(handler=cmd_dash)


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
        "Nothing runs. Exit 0 when valid (warnings, e.g. a param the component does not declare, are printed and "
        "counted in the last line), 2 when not, or with --strict when there is any warning.",
    )
    _source_flags(check)
    check.add_argument(
        "--strict", action="store_true", help="a warning makes the file invalid (exit 2), as in a CI check"
    )
    check.set_defaults(handler=cmd_check)

    serve = _command(sub, "serve", "serve the Kafka bridge until SIGTERM or SIGINT, then drain")
    _kafka_flags(serve, group=True)
    serve.add_argument(
        "--http-port", type=int, default=None, help="/healthz, /readyz and /metrics; overrides http.port"
    )
    serve.add_argument("--workdir", default=None, metavar="DIR", help="runs, cache and ledger index; overrides workdir")
    serve.set_defaults(handler=cmd_serve)

    submit = _command(
        sub,
        "submit",
        "publish a suggestion message to the bridge, then report what became of each suggestion",
        "Each suggestion's id, run id and state: accepted, answered (from cache, or replayed for one sent before), "
        "or refused with its reason and field. With a config that has templates (-c), the message is checked "
        "against them first, and nothing is sent when any suggestion is refused. Exit 2 when any was refused, "
        "1 when any has no answer within --wait, 0 when each was accepted or answered (--no-wait: 0 once sent).",
    )
    _kafka_flags(submit)
    submit.add_argument("--study", default=None, help="the study (the message key); overrides the file's")
    submit.add_argument("--template", default=None, help="a template registered in the bridge's config")
    submit.add_argument("--iteration", type=int, default=None, help="the optimizer's iteration, echoed in results")
    submit.add_argument(
        "-f", "--file", default=None, help="JSON or YAML: a message, or a list of suggestions; - or none for stdin"
    )
    waiting = submit.add_mutually_exclusive_group()
    waiting.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the bridge to take or refuse each suggestion (default 5)",
    )
    waiting.add_argument(
        "--no-wait", dest="wait", action="store_const", const=0.0, help="print the suggestion ids once sent, no more"
    )
    submit.set_defaults(handler=cmd_submit)

    _ops_parsers(sub)

    tail = _command(
        sub,
        "tail",
        "follow the results and operations topics",
        "A live table on a terminal, JSON lines otherwise. A refused suggestion shows as a failed result with its "
        "reason and field (`bridge dlq` shows the refused records themselves).",
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

    _dash_parser(sub)

    schema = _command(sub, "schema", "write the JSON Schemas of every message and the AsyncAPI document")
    schema.add_argument("--out", default="schemas", metavar="DIR", help="the folder to write them to")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bridge` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from bridge import logs

    # A service tells its life (ready, partitions, operations) at info; one-shot commands only what goes wrong; the
    # dash, a view, only its errors (its address and its stop are printed).
    # `run` and `check` import structlog only if something is worth logging: most runs log nothing.
    logs.configure(
        args.log_level or {"serve": "info", "dash": "error"}.get(args.command), lazy=args.command in ("run", "check")
    )
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
