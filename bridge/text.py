"""Text that came from outside, made safe to carry in a message the bridge writes."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with NUL bytes and lone surrogates written as escapes (`\\x00`, `\\ud800`): such characters in an
    error message would make the result that carries it impossible to encode as UTF-8 JSON, or cut it short."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
