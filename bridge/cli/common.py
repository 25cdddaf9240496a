"""What the `bridge` commands share: the settings from `--config` and the flags, and the tables they print."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def settings_of(args: argparse.Namespace) -> Any:
    """The bridge's settings: the `--config` file (or the environment), then the flags given."""
    from bridge.config.settings import load_settings

    overrides = {
        "kafka.bootstrap_servers": getattr(args, "bootstrap_servers", None),
        "kafka.group_id": getattr(args, "group_id", None),
        "http.port": getattr(args, "http_port", None),
        "workdir": getattr(args, "workdir", None),
    }
    return load_settings(Path(args.config) if args.config else None, overrides)


DETAIL = 300  # characters of a reason in a table line; the jsonl output of `tail` and `dlq` has all of it


def cut(text: str, width: int) -> str:
    """`text`, cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 3] + "..."


def table_lines(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows aligned under their header (the last column unpadded: it is the long one)."""
    rows = [list(header), *map(list, rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]


def reason(kind: str, field: str | None, message: str) -> str:
    """Why something was refused, in one table cell, its field path said once."""
    where = f" at {field}" if field else ""
    return cut(f"{kind}{where}: {without_field(field, message)}", DETAIL)


def without_field(field: str | None, message: str) -> str:
    """`message` without the field path it starts with: an error lists its problems as `path: what`, and the
    first one's path is the error's field, already named beside it."""
    if field and message.startswith(f"{field}: "):
        return message[len(field) + 2 :]
    return message
