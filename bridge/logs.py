"""structlog set-up: key-value lines on stderr for people, JSON lines for machines (`BRIDGE_LOG_FORMAT=json`).

Modules log through `get_logger(__name__)`. structlog (with rich, which its console renderer imports) is a good
part of a short command's start-up, and `bridge run` logs nothing on most runs: with `configure(lazy=True)` it is
imported only when an event passes the level, or when a module that logs through structlog directly was
imported (`settle()`). Until then an event below the level costs a comparison.

aiokafka logs through the standard library (`Unable connect to ...`, `Group Coordinator Request failed ...`, each
a retry the bridge makes and reports in its own words); its records become the bridge's debug events, so a user
sees them only with `--log-level debug`, in the bridge's format.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

# The level and JSON flag of a configuration not applied to structlog yet (one item at most; a list, so no module
# global is rebound).
_pending: list[tuple[int, bool]] = []


def configure(level: str | None = None, *, json: bool | None = None, lazy: bool = False) -> None:
    """Configure structlog once per process; `level` defaults to `BRIDGE_LOG_LEVEL` or warning. `lazy`: leave
    structlog unimported until something logs at `level` or above (see `settle`)."""
    name = (level or os.environ.get("BRIDGE_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.WARNING)
    as_json = json if json is not None else os.environ.get("BRIDGE_LOG_FORMAT", "").lower() == "json"
    _pending[:] = [(numeric, as_json)]
    _route_library_logs(numeric)
    if not lazy or "structlog" in sys.modules:
        _apply()


LIBRARY_LOGGERS = ("aiokafka",)
"""The standard library loggers whose records are shown as the bridge's debug events, never on their own."""


class _AsDebugEvents(logging.Handler):
    """Hands a library's log records to the bridge's logger as debug events: the library's warnings are about
    what the bridge retries and reports itself."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            said = record.getMessage()
        except Exception:
            said = str(record.msg)
        root = record.name.split(".", 1)[0]
        get_logger(record.name).debug(root, said=said, severity=record.levelname.lower())


def _route_library_logs(level: int) -> None:
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [_AsDebugEvents()]
        library.propagate = False  # never Python's last-resort handler, which prints bare lines on stderr
        # Below debug nothing of theirs is shown: no record is even made.
        library.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL + 1)


def settle() -> None:
    """Apply a lazy configuration now if structlog was imported meanwhile: by a module that logs through it
    directly, which would otherwise log unconfigured (every level, on stdout)."""
    if _pending and "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    try:
        numeric, as_json = _pending.pop()
    except IndexError:  # applied already (by another thread, at the same moment)
        return
    import structlog

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


class Logger:
    """A module's logger: structlog's, fetched on each event, so it follows `configure` (and `capture_logs`)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _emit(self, method: str, level: int, event: str, kw: dict[str, Any]) -> None:
        if _pending:
            if level < _pending[0][0]:
                return  # below the level: structlog would drop it too, and need not be imported for that
            _apply()
        import structlog

        getattr(structlog.get_logger(self._name), method)(event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        """Log `event` with fields `kw` at debug level."""
        self._emit("debug", logging.DEBUG, event, kw)

    def info(self, event: str, **kw: Any) -> None:
        """Log `event` with fields `kw` at info level."""
        self._emit("info", logging.INFO, event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        """Log `event` with fields `kw` at warning level."""
        self._emit("warning", logging.WARNING, event, kw)

    def error(self, event: str, **kw: Any) -> None:
        """Log `event` with fields `kw` at error level."""
        self._emit("error", logging.ERROR, event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        """Log `event` at error level with the exception being handled."""
        self._emit("exception", logging.ERROR, event, kw)


def get_logger(name: str) -> Logger:
    """The logger of module `name`."""
    return Logger(name)
