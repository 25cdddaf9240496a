"""One decoder per topic the bridge writes for others to read: a record's bytes to its message, or `Unreadable`.

The results topic holds final results and progress events, the dead-letter topic dead letters, the operations
topic operation events. Every reader of them (the client, `bridge stop`, `bridge tail`, `bridge dlq`) decodes with
these functions, so all agree on what a record holds and on what they cannot read: a record a newer bridge wrote
(a schema version this one does not know), bytes that are not a message, a message that does not validate. None
of these raises; each caller decides what an `Unreadable` record becomes (skipped and counted, or shown). No I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeAlias, TypeVar, cast

from bridge.contract.codec import load_object, parse_object
from bridge.contract.dead_letters import DeadLetter
from bridge.contract.limits import Limits
from bridge.contract.messages import MessageError, OperationCreated, OperationFinished, OperationProgress
from bridge.contract.results import ProgressEvent, RunResult
from bridge.contract.versions import DEADLETTER, OPERATION, PROGRESS, RESULT, family_of, is_newer, schemas_of

READ_LIMITS: Final = Limits(
    max_bytes=64 * 1024 * 1024, max_depth=256, max_string_length=16 * 1024 * 1024, max_width=10**6
)
"""What a record the bridge wrote may hold: looser than the caps on input (a result echoes its params, within the
configured limits, one level deeper), tight enough that a hostile record cannot exhaust a reader."""

_M = TypeVar("_M")

OperationEvent: TypeAlias = OperationCreated | OperationProgress | OperationFinished


@dataclass(frozen=True)
class Decoded(Generic[_M]):
    """A record read: its message, and the JSON object as it is on the topic (what `--output jsonl` prints)."""

    message: _M
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Unreadable:
    """A record this bridge cannot read, and why: `reason` is `newer_version` or the `MessageError` type
    (`invalid_json`, `unknown_schema`, `invalid_message`, `too_deep`, ...). `data` is the JSON object when the
    record held one."""

    reason: str
    detail: str
    schema: str | None = None
    data: Mapping[str, Any] | None = None

    @property
    def newer(self) -> bool:
        """Written by a newer bridge: a version of a schema family this one knows, but not that version."""
        return self.reason == "newer_version"

    def __str__(self) -> str:
        if self.newer:
            return f"{self.schema}: written by a newer bridge than this one; upgrade to read it"
        return f"unreadable ({self.reason}): {self.detail}"


def read_result(raw: bytes | None) -> Decoded[RunResult | ProgressEvent] | Unreadable:
    """A record of the results topic: a run's final result, or a progress event."""
    return cast("Decoded[RunResult | ProgressEvent] | Unreadable", _read(raw, (RESULT, PROGRESS)))


def read_dead_letter(raw: bytes | None) -> Decoded[DeadLetter] | Unreadable:
    """A record of the dead-letter topic."""
    return cast("Decoded[DeadLetter] | Unreadable", _read(raw, (DEADLETTER,)))


def read_operation(raw: bytes | None) -> Decoded[OperationEvent] | Unreadable:
    """A record of the operations topic: an operation created, its progress, or its end."""
    return cast("Decoded[OperationEvent] | Unreadable", _read(raw, (OPERATION,)))


def _read(raw: bytes | None, families: Collection[str]) -> Decoded[Any] | Unreadable:
    """The message of one of `families` that `raw` holds (the registry, `versions.py`, says which schemas)."""
    if raw is None:
        return Unreadable("invalid_message", "a record without a value (a tombstone)")
    try:
        data = load_object(raw, limits=READ_LIMITS)
    except MessageError as exc:
        return Unreadable(exc.type, exc.message)
    schema = data.get("schema")
    named = schema if isinstance(schema, str) else None
    if is_newer(schema) and family_of(str(schema)) in families:
        return Unreadable("newer_version", f"schema {schema} is newer than this bridge reads", named, data)
    try:
        message = parse_object(data, accept=schemas_of(*families))
    except MessageError as exc:
        where = f" at {exc.field}" if exc.field else ""
        return Unreadable(exc.type, f"{exc.message}{where}", named, data)
    return Decoded(message, data)
