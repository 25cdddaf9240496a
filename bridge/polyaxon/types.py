"""Parse a param value to its input's declared type, as Polyaxon 2.x does.

Polyaxon turns the `type` string into a Python type and validates with pydantic in lax mode; a string value is
first read as JSON unless the type is text-like (`str`, `path`, `bool`, dates, ...). So `int` takes 5, "5" and
5.0 but not "abc" or 5.5; `bool` takes true and the strings "yes", "1", "on", ...; `str` turns numbers, lists
and dicts into compact JSON; `dict`/`list` take the object or its JSON text. The type strings may be
Python-ish generics: `List[int]`, `Dict[str, float]`, `Optional[int]`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError

__all__ = ["TypeSpec", "TypeSyntaxError", "ValueParseError", "compact_json", "parse_type", "parse_value"]


class TypeSyntaxError(ValueError):
    """An input's `type` that Polyaxon would not know."""


class ValueParseError(ValueError):
    """A value that does not parse to its input's type; the message is in Polyaxon's words."""


def compact_json(value: Any) -> str:
    """JSON as Polyaxon writes it for params: orjson's, with no spaces and its spelling of floats."""
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{compact_json(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple | set):
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)


def _float_text(value: float) -> str:
    """orjson's float text, which `--lr={{ params.lr.as_str }}` shows: 1e-05 is "0.00001", 1e-07 is "1e-7"."""
    if not math.isfinite(value):
        return "null"
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    if exponent == -5:  # Python writes an exponent from 1e-5 down, orjson only from 1e-6 down
        sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
        return f"{sign}0.0000{digits.replace('.', '')}"
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _generic_str(value: Any) -> Any:
    # Polyaxon's `str` is lenient: numbers, lists and dicts become their JSON text (True becomes "true").
    if isinstance(value, int | float | dict | list | tuple | set):
        return compact_json(list(value) if isinstance(value, tuple | set) else value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


GenericStr = Annotated[str, BeforeValidator(_generic_str)]


class _GitValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    revision: str | None = None
    flags: list[str] | None = None


# Polyaxon's names for its types. Text-like types are never read as JSON first.
_SCALARS: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "path": str,
    "uri": str,
    "image": str,
    "gcs": str,
    "s3": str,
    "wasb": str,
    "uuid": str,
    "email": str,
    "metric": float,
    "metadata": dict[str, Any],
    "dict": dict[str, Any],
    "list": list[Any],
    "any": Any,
    "Any": Any,
    "date": date,
    "datetime": datetime,
    "timedelta": timedelta,
    "git": _GitValue,
    # Init-only types (artifacts to fetch, files to write...): their value is an object, kept as is.
    "artifacts": dict[str, Any],
    "file": dict[str, Any],
    "dockerfile": dict[str, Any],
    "tensorboard": dict[str, Any],
    "event": dict[str, Any],
}
_NOT_JSON_LOADED = frozenset(
    {"str", "path", "uri", "image", "gcs", "s3", "wasb", "uuid", "email", "bool", "any", "Any"}
    | {"date", "datetime", "timedelta"}
)
_GENERICS = {"List": list, "list": list, "Dict": dict, "dict": dict, "Optional": Optional, "Union": Union}
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\[|\]|,)")


@dataclass(frozen=True)
class TypeSpec:
    """A parsed `type` string: what to validate with, and whether a string value is read as JSON first."""

    text: str
    python_type: Any
    json_loaded: bool

    def adapter(self) -> TypeAdapter[Any]:
        """The pydantic validator for this type (cached per type)."""
        return _adapter(self.python_type)


def parse_type(text: str, *, is_list: bool = False) -> TypeSpec:
    """Turn an input's `type` (and `isList`) into a TypeSpec, or raise TypeSyntaxError naming the type."""
    return _parse_type(text, is_list)


@lru_cache(maxsize=512)
def _parse_type(text: str, is_list: bool) -> TypeSpec:
    tokens = _tokenise(text)
    python_type, rest = _parse_expr(tokens, text, top=True)
    if rest:
        raise TypeSyntaxError(f"Unknown type `{text}`")
    if is_list:
        # Polyaxon wraps the resolved type, so `isList` with `str` keeps the lenient string for each item.
        return TypeSpec(text=f"List[{text}]", python_type=list[python_type], json_loaded=True)  # type: ignore[valid-type]  # built at run time
    return TypeSpec(text=text, python_type=python_type, json_loaded=tokens[0] not in _NOT_JSON_LOADED)


@lru_cache(maxsize=512)
def _adapter(python_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(python_type)


def _tokenise(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            raise TypeSyntaxError(f"Unknown type `{text}`")
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        raise TypeSyntaxError("Empty type")
    return tokens


def _parse_expr(tokens: list[str], text: str, *, top: bool = False) -> tuple[Any, list[str]]:
    name, rest = tokens[0], tokens[1:]
    if rest and rest[0] == "[":
        if name not in _GENERICS:
            raise TypeSyntaxError(f"Unknown type `{text}`")
        args: list[Any] = []
        rest = rest[1:]
        while True:
            if not rest:
                raise TypeSyntaxError(f"Unknown type `{text}`")
            arg, rest = _parse_expr(rest, text)
            args.append(arg)
            if rest and rest[0] == ",":
                rest = rest[1:]
                continue
            if rest and rest[0] == "]":
                rest = rest[1:]
                break
            raise TypeSyntaxError(f"Unknown type `{text}`")
        return _apply_generic(name, args, text), rest
    if name in _SCALARS:
        # Only a whole `str` type is Polyaxon's lenient string; inside a generic it is pydantic's plain str.
        return (GenericStr if top and name == "str" else _SCALARS[name]), rest
    raise TypeSyntaxError(f"Unknown type `{text}`")


def _apply_generic(name: str, args: list[Any], text: str) -> Any:
    origin = _GENERICS[name]
    if origin is list and len(args) == 1:
        return list[args[0]]  # type: ignore[valid-type]  # a type built at run time from the `type` string
    if origin is dict and len(args) == 2:
        return dict[args[0], args[1]]  # type: ignore[valid-type]  # same
    if origin is Optional and len(args) == 1:
        return Optional[args[0]]  # noqa: UP045  # built at run time, `X | None` needs a real type
    if origin is Union and args:
        return Union[tuple(args)]  # noqa: UP007  # same
    raise TypeSyntaxError(f"Unknown type `{text}`")


def parse_value(spec: TypeSpec, value: Any) -> Any:
    """Parse a non-None value to `spec`, or raise ValueParseError ("Could not parse value `abc` to `int`")."""
    candidate = value
    if spec.json_loaded and isinstance(value, str):
        try:
            candidate = json.loads(value, parse_constant=_reject_constant)
        except ValueError as exc:
            raise _parse_error(value, spec) from exc
    try:
        parsed = spec.adapter().validate_python(candidate)
    except ValidationError as exc:
        raise _parse_error(value, spec) from exc
    return _plain(parsed)


def _reject_constant(name: str) -> Any:
    # orjson, which Polyaxon uses, rejects NaN/Infinity: so does this.
    raise ValueError(f"not JSON: {name}")


def _parse_error(value: Any, spec: TypeSpec) -> ValueParseError:
    shown = compact_json(value) if isinstance(value, Mapping | list) else value
    return ValueParseError(f"Could not parse value `{shown}` to `{spec.text}`")


def _plain(value: Any) -> Any:
    """Models (the git type) become plain dicts, so params stay JSON-like."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
