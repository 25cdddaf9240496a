"""From the bytes of one record to the message it holds, or to a `MessageError` that says why not.

Every record is checked against the limits first (`limits.py`: size, depth, width, strings, numbers), then its
`schema` is looked up in the registry (`versions.py`) and its fields are validated by that schema's model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from bridge.contract.limits import LimitExceeded, Limits, check_value
from bridge.contract.messages import (
    _OPERATION_EVENTS,
    CONTROL_SCHEMA,
    MAX_SUGGESTIONS,
    OPERATION_SCHEMA,
    SUGGESTION_SCHEMA,
    ControlMessage,
    MessageError,
    SuggestionMessage,
    field_path,
)
from bridge.contract.versions import MESSAGE_TYPES, Message
from bridge.errors import Problem

_M = TypeVar("_M", bound=BaseModel)


def parse_message(
    raw: bytes,
    *,
    accept: Collection[str] | None = None,
    default_schema: str | None = None,
    max_suggestions: int = MAX_SUGGESTIONS,
    max_bytes: int | None = None,
    limits: Limits | None = None,
) -> Message:
    """Decode one record's value into its message, or raise `MessageError`.

    `accept` limits the schemas taken (others are `unknown_schema`); `default_schema` stands for a missing
    `schema` field; `max_suggestions`, `max_bytes` and `limits` are the service's caps.
    """
    return parse_object(
        load_object(raw, limits=_limits(limits, max_bytes)),
        accept=accept,
        default_schema=default_schema,
        max_suggestions=max_suggestions,
    )


def load_object(raw: bytes, *, limits: Limits | None = None) -> dict[str, Any]:
    """The JSON object one record's value holds, checked against `limits`; or raise `MessageError`."""
    return _load(raw, limits or Limits())


def parse_object(
    data: Mapping[str, Any],
    *,
    accept: Collection[str] | None = None,
    default_schema: str | None = None,
    max_suggestions: int = MAX_SUGGESTIONS,
) -> Message:
    """The message a decoded JSON object (from `load_object`) holds, by its `schema`; or raise `MessageError`."""
    name = _schema_of(data, accept if accept is not None else MESSAGE_TYPES.keys(), default_schema)
    if name == OPERATION_SCHEMA:
        event = data.get("event")
        if event not in _OPERATION_EVENTS:
            expected = ", ".join(map(repr, _OPERATION_EVENTS))
            raise MessageError("invalid_message", f"expected one of {expected}, got {event!r}", "event")
        model: type[BaseModel] = _OPERATION_EVENTS[event]
    else:
        model = MESSAGE_TYPES[name]
    # MESSAGE_TYPES holds exactly the members of Message, which mypy cannot see through the table.
    return cast(Message, _validate(model, data, max_suggestions))


def parse_suggestion(
    raw: bytes, *, max_suggestions: int = MAX_SUGGESTIONS, max_bytes: int | None = None, limits: Limits | None = None
) -> SuggestionMessage:
    """Decode a record of the suggestions topic; a message without `schema` is taken as a suggestion."""
    data = _load(raw, _limits(limits, max_bytes))
    _schema_of(data, (SUGGESTION_SCHEMA,), SUGGESTION_SCHEMA)
    return _validate(SuggestionMessage, data, max_suggestions)


def parse_control(raw: bytes, *, max_bytes: int | None = None, limits: Limits | None = None) -> ControlMessage:
    """Decode a record of the control topic."""
    data = _load(raw, _limits(limits, max_bytes))
    _schema_of(data, (CONTROL_SCHEMA,), None)
    return _validate(ControlMessage, data)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _limits(limits: Limits | None, max_bytes: int | None) -> Limits:
    base = limits or Limits()
    return base if max_bytes is None else dataclasses.replace(base, max_bytes=max_bytes)


def _load(raw: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_bytes:
        raise MessageError("message_too_large", f"{len(raw)} bytes, more than the {limits.max_bytes} allowed")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise MessageError("invalid_json", f"not UTF-8: invalid byte at position {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise MessageError(
            "invalid_json", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise MessageError(
            "too_deep", f"nested deeper than the JSON decoder goes (the limit is {limits.max_depth})"
        ) from None
    except ValueError as exc:
        raise MessageError("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("invalid_message", f"expected a JSON object, got {type(data).__name__}")
    try:
        check_value(data, limits)
    except LimitExceeded as exc:
        raise MessageError(exc.type, exc.message, exc.field) from None
    return data


def _schema_of(data: Mapping[str, Any], accept: Collection[str], default: str | None) -> str:
    name = data.get("schema", default)
    if isinstance(name, str) and name in accept:
        return name
    expected = ", ".join(sorted(accept))
    got = "no schema field" if name is None else f"{name!r}"
    raise MessageError("unknown_schema", f"expected schema {expected}, got {got}", "schema")


def _validate(model: type[_M], data: Mapping[str, Any], max_suggestions: int = MAX_SUGGESTIONS) -> _M:
    try:
        return model.model_validate(data, context={"max_suggestions": max_suggestions})
    except ValidationError as exc:
        problems = [
            Problem(field_path(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors(include_url=False)
        ]
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MessageError("invalid_message", first.message + more, first.path or None, problems) from None
