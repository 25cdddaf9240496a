"""The dead-letter topic's message: a record the bridge could not take, kept for replay, and why.

A dead letter carries the original bytes in base64 and cuts what it quotes to the bridge's excerpt limit, so
malformed input of any size or encoding can land there; `DeadLetterError` is the stable description of why.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from bridge.contract.limits import printable
from bridge.contract.messages import DEADLETTER_SCHEMA, MessageError, WrittenMessage
from bridge.contract.results import Written
from bridge.errors import InvalidInput, NotSupported, PolyaxonfileError

MAX_ERROR_TEXT = 2000
"""The longest error message a dead letter or a result carries (the rest is in the bridge's log)."""

_Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]


class DeadLetterError(Written):
    """Why a record was dead-lettered: a stable `type`, a message, the field path (None: the whole record)."""

    type: str = Field(description="invalid_json, unknown_schema, invalid_message, message_too_large, ...")
    message: str
    field: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> DeadLetterError:
        """Describe any error the way the dead-letter topic shows it."""
        if isinstance(exc, MessageError):
            return cls(type=exc.type, message=exc.message, field=exc.field)
        if isinstance(exc, PolyaxonfileError):
            kind = "not_supported" if isinstance(exc, NotSupported) else "invalid_operation"
            return cls(type=kind, message=str(exc), field=exc.path or None)
        if isinstance(exc, InvalidInput):
            return cls(type="invalid_input", message=str(exc))
        return cls(type="unexpected_error", message=f"{type(exc).__name__}: {exc}")

    def bounded(self) -> DeadLetterError:
        """The same error with its message and field cut to a size any dead letter can carry, and whatever of the
        input they quote made writable (no NUL byte or lone surrogate)."""
        message = printable(self.message)
        message = message if len(message) <= MAX_ERROR_TEXT else message[:MAX_ERROR_TEXT] + "..."
        field = None if self.field is None else printable(self.field)[:512]
        return self.model_copy(update={"message": message, "field": field})


class RecordHeader(Written):
    """One header of the original record: its key, and its value in base64 (null when it had none)."""

    key: str = Field(max_length=1024)
    value: _Base64 | None = None


class DeadLetter(WrittenMessage):
    """A record the bridge could not take (`bridge.deadletter/v1`), kept for replay.

    `value` and `key` are the original bytes in standard base64 (null when the record had none): a dead
    letter is where malformed input lands, so nothing is assumed about its encoding. A value larger than the
    bridge's excerpt limit is kept as a prefix (`truncated`; `value_size` is the original's size): the
    topic, partition and offset find the whole record, and a dead letter never outgrows what the broker takes.
    """

    schema_: Literal["bridge.deadletter/v1"] = Field(default=DEADLETTER_SCHEMA, alias="schema")
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: _Base64 | None = None
    value: _Base64 | None = None
    value_size: int | None = Field(default=None, ge=0, description="The original value's size in bytes.")
    truncated: bool = Field(default=False, description="True when `value` (or `key`) holds only a prefix.")
    headers: list[RecordHeader] = Field(default_factory=list, description="The original record's headers.")
    timestamp: AwareDatetime | None = Field(default=None, description="The original record's timestamp.")
    at: AwareDatetime = Field(description="When the bridge dead-lettered it.")
    error: DeadLetterError

    @classmethod
    def of_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        error: DeadLetterError | BaseException,
        at: datetime | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        max_excerpt_bytes: int | None = None,
    ) -> DeadLetter:
        """The dead letter of one consumed record; `error` may be the exception that refused it. Past
        `max_excerpt_bytes`, the key, the value and the headers are cut to what fits."""
        cap = max_excerpt_bytes
        kept_key, key_cut = _excerpt(key, cap)
        kept_value, value_cut = _excerpt(value, cap)
        kept_headers: list[RecordHeader] = []
        budget = cap
        for name, raw in headers[:64]:
            piece, cut = _excerpt(raw, None if budget is None else max(0, budget // 4))
            if budget is not None:
                budget -= len(name) + len(piece or b"")
            kept_headers.append(RecordHeader(key=name[:1024], value=_b64(piece)))
            value_cut = value_cut or cut
        described = error if isinstance(error, DeadLetterError) else DeadLetterError.from_exception(error)
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=_b64(kept_key),
            value=_b64(kept_value),
            value_size=None if value is None else len(value),
            truncated=key_cut or value_cut or len(headers) > 64,
            headers=kept_headers,
            timestamp=None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000, UTC),
            at=at or datetime.now(UTC),
            error=described.bounded(),
        )

    def key_bytes(self) -> bytes | None:
        """The original key."""
        return None if self.key is None else base64.b64decode(self.key)

    def value_bytes(self) -> bytes | None:
        """The original value (its prefix when `truncated`)."""
        return None if self.value is None else base64.b64decode(self.value)


def _excerpt(raw: bytes | None, cap: int | None) -> tuple[bytes | None, bool]:
    """`raw`, or its prefix of `cap` bytes (base64 grows it by a third), and whether it was cut."""
    if raw is None or cap is None or len(raw) <= cap:
        return raw, False
    return raw[:cap], True


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def excerpt_around(raw: bytes, field: str | None, width: int = 80) -> str:
    """About `width` characters of `raw` (as text, NULs escaped) around the field at fault, else its start, with
    `...` where text was left out. The field is found by its path's names in turn (`suggestions[1].params.epochs`:
    `"suggestions"`, then the second `"params"` after it, then `"epochs"`), on the bytes as they are: a record that
    is not JSON is shown too."""
    text = printable(raw.decode("utf-8", "replace"))
    at = _find_path(text, field) if field else -1
    start = max(0, at - width // 3) if at >= 0 else 0
    piece = text[start : start + width]
    return ("..." if start else "") + piece + ("..." if start + width < len(text) else "")


def _find_path(text: str, field: str) -> int:
    """Where the last name of `field` is quoted in `text`, walking its path; -1 when its first name is not."""
    at, skip = -1, 0
    for index, name in _PATH_PART.findall(field):
        if index:
            skip = int(index)
            continue
        found = text.find(f'"{name}"', at + 1)
        for _ in range(skip):  # the n-th item of a list: the n-th name after the list's own
            later = text.find(f'"{name}"', found + 1) if found >= 0 else -1
            found = later if later >= 0 else found
        if found < 0:
            return at
        at, skip = found, 0
    return at
