"""`bridge dash`: the read-only live web view of the topics, until SIGTERM or SIGINT (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from bridge.cli.common import settings_of
from bridge.errors import EXIT_OK, InvalidInput


def cmd_dash(args: argparse.Namespace) -> int:
    """Serve the dash until SIGTERM/SIGINT."""
    from bridge.dash.serve import Dash

    if args.runs_per_study < 1:
        raise InvalidInput("--runs-per-study takes a number of runs, 1 or more")
    token = args.token or os.environ.get("BRIDGE_DASH_TOKEN") or None
    settings = settings_of(args)  # a bad config fails here, before anything connects

    # aiokafka's own lines (each failed connection attempt, ...) are debug events (bridge/logs.py): the one line
    # that matters is the error at the end (exit 1).
    def listening(url: str) -> None:
        shown = f"{url}?token=..." if token else url
        print(f"bridge dash: serving on {shown} (SIGTERM or Ctrl-C to stop)", file=sys.stderr, flush=True)

    async def serve() -> None:
        # Made on the loop: the Kafka client it holds binds to the running loop.
        dash = Dash(settings, host=args.host, port=args.port, token=token, keep_runs=args.runs_per_study)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, dash.stop)
        await dash.run(connect_timeout_s=args.connect_timeout, on_listening=listening)

    asyncio.run(serve())
    print("bridge dash: stopped", file=sys.stderr)
    return EXIT_OK
