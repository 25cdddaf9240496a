"""`bridge submit`: publish one suggestion message, then say what became of each suggestion it carries."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.cli.common import DETAIL, cut, reason, settings_of, table_lines
from bridge.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, InvalidInput

if TYPE_CHECKING:
    from bridge.client.answer_book import Answer
    from bridge.config.settings import BridgeSettings
    from bridge.contract.messages import SuggestionMessage

_STATE_WORDS = {
    "cached": "answered from cache",
    "replayed": "replayed",
    "accepted": "accepted",
    "pending": "no answer yet",
}


def refused_locally(message: SuggestionMessage, settings: BridgeSettings, warned: dict[str, set[str]]) -> bool:
    """Validate `message` against the config's templates as the bridge would; print what it refuses (nothing is
    sent then) or, when it refuses nothing, the params a template does not declare (warnings, with the closest
    declared name); whether anything is refused. `warned` gets, by suggestion id, the warnings the bridge's
    answers will carry for what was printed here (not printed again then)."""
    from bridge.contract.dead_letters import DeadLetterError
    from bridge.local.hints import suggestion_warnings
    from bridge.service.intake import Templates, accept

    outcome = accept(message.to_json().encode(), Templates(settings), settings)
    if isinstance(outcome, DeadLetterError):
        print(f"refused: {reason(outcome.type, outcome.field, outcome.message)}")
        return True
    rows = [
        (r.suggestion_id, r.run_id, "refused", reason(r.error.type, r.error.field, r.error.message))
        for r in outcome.refused
    ]
    if rows:
        print("\n".join(table_lines(("SUGGESTION", "RUN", "STATE", "DETAIL"), rows)))
        return True
    if outcome.operation is not None:
        for lines in suggestion_warnings(outcome.operation, message).values():
            for line in lines:
                print(f"warning: {line}", file=sys.stderr)
        for run in outcome.runs:
            warned[run.suggestion_id or ""] = set(run.warnings)
    return False


def print_warnings(
    answers: Iterable[Answer],
    *,
    already: Mapping[str, set[str]],
    learned: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Each suggestion's warnings (a param its template does not declare, with the closest declared name) as its
    answer carries them, and as `learned` (by suggestion id) words them from the operation the bridge built, for
    an answer with no result yet: once each, on stderr; those in `already` (printed before it was sent) are not
    repeated. The same warning from the answer and from `learned` is printed once."""
    for a in answers:
        for warning in dict.fromkeys([*a.warnings, *(learned or {}).get(a.suggestion_id, ())]):
            if warning not in already.get(a.suggestion_id, ()):
                print(f"warning: suggestion {a.suggestion_id}: {warning}", file=sys.stderr)


def _answer_detail(answer: Answer, waited_s: float) -> str:
    from bridge.local.console import fmt_mapping

    if answer.reason is not None:
        return reason(answer.reason.type, answer.reason.field, answer.reason.message)
    result = answer.result
    if result is not None:
        if result.error is not None:
            return reason(result.error.type, result.error.field, result.error.message)
        return cut(fmt_mapping(result.outputs), DETAIL)
    if answer.state == "accepted":
        return "its run is on its way: `bridge tail` shows its result"
    return f"nothing within {waited_s:g} s: is `bridge serve` running? (`bridge tail` shows answers as they come)"


def print_answers(answers: Iterable[Answer], *, waited_s: float) -> int:
    """Print what became of each suggestion sent; the exit code: 2 when any was refused, else 1 when any has no
    answer yet, else 0 (each accepted or answered)."""
    answers = list(answers)
    rows = []
    for a in answers:
        state = _STATE_WORDS.get(a.state, a.state)
        if a.result is not None and a.state in ("cached", "replayed"):
            state += f" ({a.result.status.value})"
        rows.append((a.suggestion_id, a.run_id, state, _answer_detail(a, waited_s)))
    print("\n".join(table_lines(("SUGGESTION", "RUN", "STATE", "DETAIL"), rows)))
    refused = sum(1 for a in answers if a.refused)
    if refused:
        print(f"{refused} suggestion(s) refused: nothing runs for them", file=sys.stderr)
        return EXIT_INVALID
    unanswered = sum(1 for a in answers if a.state == "pending")
    if unanswered:
        print(f"{unanswered} suggestion(s) without an answer within {waited_s:g} s", file=sys.stderr)
        return EXIT_FAILED
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


_FLAGS_HELP = {
    "study": "the study the suggestions belong to, the message's key",
    "template": "the name of a template registered in the bridge's config, which runs the suggestions",
}


def _flag_error(args: argparse.Namespace, error: Any) -> str:
    """A validation error of the message, naming the flag that set the field at fault, else the file."""
    from bridge.contract.messages import field_path

    loc = tuple(error["loc"])
    flag = f"--{loc[0]}" if loc and loc[0] in ("study", "template", "iteration") else None
    if flag is not None and getattr(args, str(loc[0]), None) is not None:
        return f"{flag} {getattr(args, str(loc[0]))!r}: {error['msg']}"
    where = f"{args.file or '-'} (-f)"
    return f"{where}: {field_path(loc)}: {error['msg']}"


def cmd_submit(args: argparse.Namespace) -> int:
    """Publish one suggestion message, then report what became of each suggestion (exit 2 when any was refused, 1
    when any has no answer within `--wait`)."""
    from pydantic import ValidationError

    from bridge.client import BridgeClient
    from bridge.contract.messages import SuggestionMessage

    settings = settings_of(args)
    data = _read_suggestions(args)
    for key in ("study", "template"):
        if not data.get(key):
            raise InvalidInput(f"--{key} is required (or a `{key}` in the message file): {_FLAGS_HELP[key]}")
    try:
        message = SuggestionMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_flag_error(args, exc.errors()[0])) from None
    warned: dict[str, set[str]] = {}
    if settings.templates and refused_locally(message, settings, warned):
        print("nothing sent: the config's templates refuse this message", file=sys.stderr)
        return EXIT_INVALID

    async def send() -> tuple[dict[str, Answer] | None, dict[str, Any] | None]:
        """The answers (None with --no-wait), and the operation the bridge built for the message's template when
        submit has no templates of its own and an answer has no result yet (its warnings are learned from it)."""
        client = BridgeClient(kafka=settings.kafka, topics=settings.topics, connect_timeout_s=args.connect_timeout)
        # Not `async with`: a start that fails never reaches __aexit__, and its producer would be left unclosed.
        try:
            await client.start()
            if args.wait <= 0:
                await client.submit_message(message)
                return None, None
            # With -c its warnings were printed before sending. An inline operation's name may be another message's.
            if settings.templates or message.operation is not None:
                return await client.answers(await client.submit_message(message), timeout=args.wait), None
            async with client.watch_operations() as operations:  # from before sending: its operation is read
                sent = await client.submit_message(message)
                deadline = time.monotonic() + args.wait
                answers = await client.answers(sent, timeout=args.wait)
                if operations is None or not any(a.state == "accepted" for a in answers.values()):
                    return answers, None
                remaining = deadline - time.monotonic()
                built = await operations.created(message.study, message.template, timeout=remaining)
                return answers, None if built is None else built.operation
        finally:
            await client.stop()

    answers, built = asyncio.run(send())
    print(
        f"submitted {len(message.suggestions)} suggestion(s) for {message.study}/{message.template}",
        file=sys.stderr,
    )
    if answers is None:  # --no-wait: the ids only, as the bridge will know them
        for sid in message.suggestion_ids():
            print(sid)
        return EXIT_OK
    learned = None
    if built is not None:
        from bridge.local.hints import answer_warnings

        learned = answer_warnings(built, message)
    print_warnings(answers.values(), already=warned, learned=learned)
    return print_answers(answers.values(), waited_s=args.wait)
