"""A configurable run for the engine's tests: records when it ran, reports metrics, fails or hangs on demand.

Every execution leaves `<record>/<name>.<attempt>.<pid>.json` with its start and end time and argv, so a test
can count executions and observe overlap from the outside.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from bridge.tracking import log_metrics, log_outputs


def _write(path: Path, info: dict[str, object]) -> None:
    # Atomic, so a test polling the record dir never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--fail-before-attempt", type=int, default=0, help="exit 3 while BRIDGE_ATTEMPT < this")
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--metric", default="loss")
    p.add_argument("--values", default="", help="comma-separated intermediate values, one per step")
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--ignore-sigterm", "--ignore_sigterm", action="store_true")
    p.add_argument("--no-outputs", "--no_outputs", action="store_true")
    p.add_argument("--wait-for", default="", help="block until this file exists (a gate the test opens)")
    args, extra = p.parse_known_args()

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    attempt = int(os.environ.get("BRIDGE_ATTEMPT", "1"))
    record = Path(args.record)
    record.mkdir(parents=True, exist_ok=True)
    mine = record / f"{args.name}.{attempt}.{os.getpid()}.json"
    info = {
        "name": args.name,
        "attempt": attempt,
        "start": time.time(),
        "argv": sys.argv[1:],
        "extra": extra,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("BRIDGE_", "JOB_"))},
        "cwd": os.getcwd(),
    }
    _write(mine, info)

    if args.wait_for:
        while not Path(args.wait_for).exists():
            time.sleep(0.02)
    values = [float(v) for v in args.values.split(",") if v]
    for step, value in enumerate(values):
        log_metrics(step=step, **{args.metric: value})
        if args.step_sleep:
            time.sleep(args.step_sleep)
    if args.sleep:
        time.sleep(args.sleep)
    info["end"] = time.time()
    _write(mine, info)
    if attempt < args.fail_before_attempt:
        print(f"failing on purpose at attempt {attempt}", file=sys.stderr)
        return 3
    if args.exit:
        print(f"exiting with {args.exit} on purpose", file=sys.stderr)
        return args.exit
    if not args.no_outputs:
        final = {args.metric: values[-1]} if values else {args.metric: 0.0}
        log_outputs(**final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
