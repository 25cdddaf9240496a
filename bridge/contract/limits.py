"""What one decoded message from a topic may hold, checked before anything else looks at it.

Every byte on a topic is hostile until checked. `json.loads` accepts what the rest of the bridge cannot take:
a float such as `1e999` becomes infinity (canonical JSON and hashing then fail), `"\\ud800"` becomes a lone
surrogate (encoding to UTF-8 fails), a NUL byte cannot be an argv item, and an object nested a few hundred deep
overflows pydantic's and the templater's recursion. `check_value` walks the decoded value once, iteratively (no
recursion of its own), and reports the first value past a limit with its field path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

LimitType = Literal[
    "too_deep", "too_wide", "string_too_long", "invalid_string", "non_finite_number", "number_out_of_range"
]

_BAD_CHARS: Final = re.compile("[\x00\ud800-\udfff]")
MAX_INT: Final = 2**63
"""Integers beyond 64 bits are refused: no template input needs them, and float conversion of one overflows."""


@dataclass(frozen=True)
class Limits:
    """The bounds of one message; the defaults are the config's (`limits`, `max_message_bytes`)."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 32
    max_string_length: int = 65536
    max_width: int = 10_000


class LimitExceeded(ValueError):
    """A value past a limit: `type` is the dead letter's error type, `field` the path of the value."""

    def __init__(self, type: LimitType, message: str, field: str | None) -> None:
        super().__init__(message)
        self.type: LimitType = type
        self.message = message
        self.field = field


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    shown = printable(key if len(key) <= 64 else key[:61] + "...")  # a path must itself be writable as JSON
    return f"{path}.{shown}" if path else shown


def _check_string(text: str, path: str, limits: Limits, what: str) -> None:
    if len(text) > limits.max_string_length:
        raise LimitExceeded(
            "string_too_long",
            f"{what} of {len(text)} characters, more than the {limits.max_string_length} allowed",
            path,
        )
    bad = _BAD_CHARS.search(text)
    if bad is not None:
        char = bad.group()
        kind = "a NUL byte" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
        raise LimitExceeded("invalid_string", f"{what} holds {kind} at position {bad.start()}", path or None)


def check_value(value: Any, limits: Limits) -> None:
    """Raise `LimitExceeded` for the first part of `value` (decoded JSON) past `limits`."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limits.max_depth:
                raise LimitExceeded("too_deep", f"nested more than {limits.max_depth} levels deep", path or None)
            if len(node) > limits.max_width:
                raise LimitExceeded(
                    "too_wide", f"{len(node)} entries, more than the {limits.max_width} allowed", path or None
                )
            if isinstance(node, dict):
                for key, item in node.items():
                    child = _join(path, key)
                    _check_string(key, child, limits, "a key")
                    stack.append((item, child, depth + 1))
            else:
                stack.extend((item, _join(path, i), depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str):
            _check_string(node, path, limits, "a string")
        elif isinstance(node, float) and not math.isfinite(node):
            raise LimitExceeded("non_finite_number", f"{node} is not a finite number", path or None)
        elif isinstance(node, int) and not isinstance(node, bool) and not -MAX_INT <= node < MAX_INT:
            raise LimitExceeded("number_out_of_range", "an integer beyond 64 bits", path or None)


def printable(text: str) -> str:
    """`text` with NUL bytes and lone surrogates written as escapes (`\\x00`, `\\ud800`): such characters in an
    error message would make the result that carries it impossible to encode as UTF-8 JSON, or cut it short."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
