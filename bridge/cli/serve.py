"""`bridge serve`, `submit`, `tail` and `schema`: the commands that talk to Kafka through the bridge's config."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from bridge.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, InvalidInput


def _settings(args: argparse.Namespace) -> Any:
    from bridge.config.settings import load_settings

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
    """Publish one suggestion message, then report what became of each suggestion (exit 2 when any was refused)."""
    from pydantic import ValidationError

    from bridge.cli.ops import print_answers, refused_locally
    from bridge.client import BridgeClient
    from bridge.contract.messages import SuggestionMessage

    settings = _settings(args)
    try:
        message = SuggestionMessage.model_validate(_read_suggestions(args))
    except ValidationError as exc:
        from bridge.contract.messages import field_path

        first = exc.errors()[0]
        raise InvalidInput(f"{field_path(first['loc'])}: {first['msg']}") from None
    if settings.templates and refused_locally(message, settings):
        print("nothing sent: the config's templates refuse this message", file=sys.stderr)
        return EXIT_INVALID

    async def send() -> Any:
        client = BridgeClient(kafka=settings.kafka, topics=settings.topics, connect_timeout_s=args.connect_timeout)
        # Not `async with`: a start that fails never reaches __aexit__, and its producer would be left unclosed.
        try:
            await client.start()
            sent = await client.submit_message(message)
            return None if args.wait <= 0 else await client.answers(sent, timeout=args.wait)
        finally:
            await client.stop()

    answers = asyncio.run(send())
    print(
        f"submitted {len(message.suggestions)} suggestion(s) for {message.study}/{message.template}",
        file=sys.stderr,
    )
    if answers is None:  # --no-wait: the ids only, as the bridge will know them
        for sid in message.suggestion_ids():
            print(sid)
        return EXIT_OK
    return print_answers(answers.values(), waited_s=args.wait)


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow the results and operations topics."""
    from bridge.cli.tail import tail

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
    from bridge.contract.jsonschema import write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    return EXIT_OK
