"""`bridge serve`, `tail` and `schema`: the replica itself, following its topics, and its messages' schemas."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from bridge.cli.common import settings_of
from bridge.errors import EXIT_FAILED, EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Kafka bridge until SIGTERM/SIGINT, then drain."""
    from bridge.app import build_service

    service = build_service(settings_of(args), connect_timeout_s=args.connect_timeout)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(serve())
    if service.publish_failures:
        for failure in service.publish_failures:
            print(f"bridge: could not serve: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print("bridge: drained, bye", file=sys.stderr)
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow the results and operations topics."""
    from bridge.cli.tail import tail

    settings = settings_of(args)
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
