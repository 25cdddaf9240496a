"""`bridge dlq`, `stop` and `logs`: the commands that show a person what the bridge refused, and act on runs.

Heavy imports (the Kafka client, the config) happen inside the handlers: `bridge --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.cli.common import cut, reason, settings_of, table_lines, without_field
from bridge.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, InvalidInput

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

if TYPE_CHECKING:
    from bridge.config.settings import BridgeSettings
    from bridge.contract.dead_letters import DeadLetter

# ---- dlq ---------------------------------------------------------------------------------------------------


def _preview(letter: DeadLetter, width: int = 60) -> str:
    """The original bytes around the field at fault (the record's start when the whole record is)."""
    from bridge.contract.dead_letters import excerpt_around

    try:
        raw = letter.value_bytes() or b""
    except ValueError:
        return ""
    return excerpt_around(raw, letter.error.field, width).replace("\n", " ").replace("\r", " ")


def _study(letter: DeadLetter) -> str:
    try:
        return (letter.key_bytes() or b"").decode("utf-8", "replace")[:40]
    except ValueError:
        return ""


def _letter_row(letter: DeadLetter) -> list[str]:
    error = letter.error
    return [
        error.type,
        cut(error.field or "-", 40),
        f"{letter.topic}:{letter.partition}@{letter.offset}",
        _study(letter) or "-",
        f"{cut(without_field(error.field, error.message), 120)} | {_preview(letter)}",
    ]


def cmd_dlq(args: argparse.Namespace) -> int:
    """Show the dead letters: why each record was refused, where it came from, and a preview of its bytes."""
    from bridge.client.operator import read_dead_letters

    settings = settings_of(args)
    header = ("TYPE", "FIELD", "SOURCE", "STUDY", "MESSAGE | ORIGINAL")
    unreadable: Counter[str] = Counter()  # records of the topic that are not dead letters this bridge reads

    async def show() -> int:
        count = 0
        stream = read_dead_letters(
            settings,
            follow=args.follow,
            limit=args.limit,
            connect_timeout_s=args.connect_timeout,
            on_unreadable=lambda why: unreadable.update([str(why)]),
        )
        if args.output == "jsonl":
            async for letter in stream:
                print(json.dumps(letter.data, separators=(",", ":")), flush=True)
                count += 1
            return count
        if args.follow:  # rows as they come: no widths known in advance
            print("  ".join(header), flush=True)
            async for letter in stream:
                print("  ".join(_letter_row(letter.message)), flush=True)
                count += 1
            return count
        rows = [_letter_row(letter.message) async for letter in stream]
        if rows:
            print("\n".join(table_lines(header, rows)))
        return len(rows)

    try:
        count = asyncio.run(show())
    except KeyboardInterrupt:
        return EXIT_OK
    print(f"{count} dead letter(s) on {settings.topics.dead_letters}", file=sys.stderr)
    for why, n in unreadable.items():
        print(f"{n} record(s) on {settings.topics.dead_letters} skipped: {why}", file=sys.stderr)
    return EXIT_OK


# ---- stop --------------------------------------------------------------------------------------------------


def _control_message(args: argparse.Namespace, settings: BridgeSettings) -> Any:
    from pydantic import ValidationError

    from bridge.contract.messages import ControlMessage

    targets = [n for n in ("run_id", "operation", "suggestion") if getattr(args, n)]
    if len(targets) != 1:
        raise InvalidInput("name one thing to stop: RUN_ID, --operation ID, or --study S --suggestion ID")
    if not args.study:
        raise InvalidInput("--study is required: the bridge stops only what belongs to the study a stop names")
    token = args.token
    if token is None and settings.control.token is not None:
        token = settings.control.token.get_secret_value()
    body: dict[str, Any] = {
        "action": "stop_operation" if args.operation else "stop_run",
        "study": args.study,
        "run_id": args.run_id,
        "operation_id": args.operation,
        "suggestion_id": args.suggestion,
        "reason": args.reason or f"stopped by {os.environ.get('USER') or 'an operator'} with `bridge stop`",
        "token": token,
    }
    try:
        return ControlMessage.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, first['loc'])) or 'stop'}: {first['msg']}") from None


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a run or an operation through the control topic, and print its final result when it comes."""
    from bridge.cli.tail import outcome_cell
    from bridge.client.operator import stop

    settings = settings_of(args)
    message = _control_message(args, settings)
    stopped = asyncio.run(stop(settings, message, wait_s=args.wait, connect_timeout_s=args.connect_timeout))
    where = f"{settings.topics.control}:{stopped.partition}@{stopped.offset}"
    if stopped.refusal is not None:
        r = stopped.refusal
        if r.type == "control_target_unknown":
            print(f"nothing stopped ({where}): {r.message}", file=sys.stderr)
            return EXIT_FAILED
        print(f"refused by the bridge ({where}): {reason(r.type, r.field, r.message)}", file=sys.stderr)
        return EXIT_INVALID
    rows = [
        (
            str(d.get("suggestion_id") or "-"),
            str(d.get("run_id")),
            f"{d.get('status')} (already finished)" if d.get("replayed") else str(d.get("status")),
            outcome_cell(d),
        )
        for d in stopped.results
    ]
    if rows:
        print("\n".join(table_lines(("SUGGESTION", "RUN", "STATUS", "DETAIL"), rows)))
    if message.action == "stop_operation":
        if stopped.operation_finished:
            return EXIT_OK
    elif any(_stopped_by_us(d) for d in stopped.results):
        return EXIT_OK
    elif stopped.results:
        print(f"nothing stopped ({where}): it had finished before the stop came", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"stop sent ({where}); not confirmed within {args.wait:g} s: still stopping, or no bridge is serving its"
        " study's partition (`bridge tail` shows its result when it ends)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _stopped_by_us(result: dict[str, Any]) -> bool:
    """A result that a stop made: `stopped` (or skipped before it started) because someone asked."""
    error = result.get("error") or {}
    return (
        not result.get("replayed") and result.get("status") in ("stopped", "skipped") and error.get("type") == "stopped"
    )


# ---- logs --------------------------------------------------------------------------------------------------


def _workdirs(args: argparse.Namespace) -> list[Path]:
    if args.workdir:
        return [Path(args.workdir)]
    dirs = [Path(os.environ.get("BRIDGE_WORKDIR", ".bridge"))]
    if args.config:  # a served run: the bridge's work dir, from its config
        dirs.insert(0, Path(settings_of(args).workdir))
    return list(dict.fromkeys(dirs))


def _last_attempt(run_dir: Path) -> Path | None:
    attempts = [p for p in (run_dir / "attempts").glob("*") if p.is_dir() and p.name.isdigit()]
    return max(attempts, key=lambda p: int(p.name)) if attempts else None


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the stdout (on stdout) and stderr (on stderr) of a run's last attempt, from the work dir of the
    bridge that ran it on this host."""
    from bridge.executors.workspace import runs_dir

    if not _RUN_ID.match(args.run_id):
        raise InvalidInput(f"{args.run_id!r} is not a run id")
    dirs = _workdirs(args)
    for workdir in dirs:
        attempt = _last_attempt(runs_dir(workdir) / args.run_id)
        if attempt is None:
            continue
        print(f"run {args.run_id}, attempt {attempt.name}: {attempt}", file=sys.stderr)
        for name, stream in (("stdout.log", sys.stdout), ("stderr.log", sys.stderr)):
            path = attempt / name
            if path.exists():
                stream.write(path.read_text(encoding="utf-8", errors="replace"))
                stream.flush()
        return EXIT_OK
    looked = ", ".join(str(runs_dir(d)) for d in dirs)
    raise InvalidInput(
        f"no logs of run {args.run_id} in {looked}. A served run's logs stay on the host of the bridge that ran it,"
        " under that bridge's work dir (runs/RUN_ID/attempts/N/stdout.log): run `bridge logs -c CONFIG RUN_ID`"
        " there, or pass --workdir"
    )
