"""`bridge serve`, `tail` and `schema`: the replica itself, following its topics, and its messages' schemas."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

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
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # `kill -USR1`: where every task waits, on stderr
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


def _dump_tasks() -> None:
    """Print where each asyncio task of the replica waits (its chain of awaits, outermost first), for an operator
    who finds it stuck: `kill -USR1 <pid>`."""
    for task in asyncio.all_tasks():
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < 20:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        print(f"bridge: task {task.get_name()}: {' -> '.join(chain) or '(no frame)'}", file=sys.stderr, flush=True)
    print(f"bridge: {len(asyncio.all_tasks())} tasks dumped", file=sys.stderr, flush=True)
