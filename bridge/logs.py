"""structlog set-up: key-value lines on stderr for people, JSON lines for machines (`BRIDGE_LOG_FORMAT=json`)."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog once per process; `level` defaults to `BRIDGE_LOG_LEVEL` or warning."""
    name = (level or os.environ.get("BRIDGE_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.WARNING)
    as_json = json if json is not None else os.environ.get("BRIDGE_LOG_FORMAT", "").lower() == "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
