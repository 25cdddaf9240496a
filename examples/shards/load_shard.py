"""Load one shard of a partitioned data set: the data-loading use of a Polyaxon mapping.

A mapping over shard names runs this once per shard, in parallel; each run reads `<source_dir>/<shard>.csv`
(a header line, then rows with an `amount` column), counts its rows, sums `amount` and reports both as the
run's outputs with `log_outputs(rows=..., total=...)`. A real loader would copy the shard somewhere; this
one only reads it, so the example needs nothing but the four tiny files in data/.

    python3 load_shard.py --shard=part-0001 --source_dir=data

Exit status: 0 loaded; 1 the shard is missing or unreadable (the message names the file and line);
2 a bad argument (a shard name must be a plain file name: no directories, no `..`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

try:
    from bridge.tracking import log_outputs
except ImportError:  # the run's environment may not have the bridge installed: speak its file protocol
    # Same behaviour as bridge.tracking: one JSON line appended to $BRIDGE_METRICS_FILE, nothing when unset.
    def log_outputs(**outputs: Any) -> None:
        path = os.environ.get("BRIDGE_METRICS_FILE")
        if path and outputs:
            with open(path, "a", encoding="utf-8") as f:
                record = {"outputs": outputs, "time": time.time()}
                f.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")


SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
COLUMN = "amount"


class ShardError(Exception):
    """The shard can't be loaded; the message says which file and why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="load_shard.py", description="Count and sum one CSV shard.")
    parser.add_argument("--shard", required=True, help="shard name, e.g. part-0001 (.csv is optional)")
    parser.add_argument("--source_dir", default="data", help="directory of the shards (default: data)")
    args = parser.parse_args(argv)
    name = args.shard.strip().removesuffix(".csv")
    if not SHARD_NAME.fullmatch(name) or ".." in name:
        parser.error(
            f"--shard={args.shard!r} is invalid: expected a plain file name such as part-0001 "
            "(letters, digits, '.', '_', '-'; no directories)"
        )
    args.shard = name
    if not args.source_dir.strip():
        parser.error("--source_dir is empty: expected a directory")
    return args


def load(source_dir: Path, shard: str) -> tuple[int, Decimal]:
    if not source_dir.is_dir():
        raise ShardError(f"source directory {source_dir} does not exist (cwd: {Path.cwd()})")
    path = source_dir / f"{shard}.csv"
    if not path.is_file():
        available = sorted(p.stem for p in source_dir.glob("*.csv"))
        raise ShardError(f"shard {shard!r} not found: no file {path}; available: {', '.join(available) or 'none'}")
    rows, total = 0, Decimal(0)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or COLUMN not in reader.fieldnames:
                raise ShardError(f"{path}: no {COLUMN!r} column in the header {reader.fieldnames}")
            for row in reader:
                value = row.get(COLUMN)
                try:
                    total += Decimal((value or "").strip())
                except InvalidOperation:
                    raise ShardError(f"{path}:{reader.line_num}: {COLUMN}={value!r} is not a number") from None
                rows += 1
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ShardError(f"{path}: cannot read: {e}") from e
    return rows, total


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows, total = load(Path(args.source_dir), args.shard)
    except ShardError as e:
        print(f"load_shard.py: error: {e}", file=sys.stderr)
        return 1
    log_outputs(rows=rows, total=float(total))
    print(f"shard {args.shard}: rows={rows} total={total}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
