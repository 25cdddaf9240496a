"""A component's inputs and outputs (`V1IO`, with their `validation:`) and an operation's params (`V1Param`).

Field names follow Polyaxon (camelCase in YAML, snake_case here), as in schema.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, StrictStr, field_validator, model_validator

from bridge.polyaxon.base import PolyaxonModel, error_at
from bridge.polyaxon.types import TypeSyntaxError, ValueParseError, parse_type, parse_value

# Names the templating context already uses (Polyaxon refuses them too).
RESERVED_IO_NAMES = ("globals", "params", "connections")


class V1Validation(PolyaxonModel):
    """Polyaxon 2's `validation:` of an input: predicates every value must satisfy."""

    delay: bool | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    multiple_of: float | None = Field(default=None, alias="multipleOf")
    regex: str | None = None
    min_length: int | None = Field(default=None, alias="minLength")
    max_length: int | None = Field(default=None, alias="maxLength")
    min_items: int | None = Field(default=None, alias="minItems")
    max_items: int | None = Field(default=None, alias="maxItems")
    options: list[Any] | None = None
    contains: list[Any] | None = None
    excludes: list[Any] | None = None
    keys: list[str] | None = None
    contains_keys: list[str] | None = Field(default=None, alias="containsKeys")
    excludes_keys: list[str] | None = Field(default=None, alias="excludesKeys")

    # Digit counting rules are rare and easy to get subtly wrong: refused rather than silently skipped.
    _not_supported = frozenset({"minDigits", "maxDigits", "decimalPlaces"})


class V1IO(PolyaxonModel):
    """An input or output of a component.

    As in Polyaxon, a `value` makes the input optional unless `isOptional: false` says otherwise (an error),
    and the value must parse to the type. `options` and `delayValidation` are Polyaxon's older spellings of
    `validation.options` / `validation.delay` and are kept where they were written.
    """

    name: StrictStr
    description: str | None = None
    type: str | None = None
    value: Any = None
    is_optional: bool | None = Field(default=None, alias="isOptional")
    is_list: bool | None = Field(default=None, alias="isList")
    is_flag: bool | None = Field(default=None, alias="isFlag")
    arg_format: str | None = Field(default=None, alias="argFormat")
    to_env: str | None = Field(default=None, alias="toEnv")
    validation: V1Validation | None = None
    delay_validation: bool | None = Field(default=None, alias="delayValidation")
    options: list[Any] | None = None

    _not_supported = frozenset({"connection", "toInit"})

    @model_validator(mode="before")
    @classmethod
    def _value_implies_optional(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "value" not in data:
            return data
        is_optional = data.get("isOptional", data.get("is_optional"))
        if is_optional is None:
            return {**data, "isOptional": True}
        if is_optional is False and data["value"] is not None:
            raise ValueError(
                f"IO `{data.get('name')}` is not optional and has default value `{data['value']}`. "
                "Please either make it optional or remove the default value."
            )
        return data

    @field_validator("name")
    @classmethod
    def _name_not_reserved(cls, v: str) -> str:
        if v in RESERVED_IO_NAMES:
            raise ValueError(f"`{v}` is taken by the templating context; use another name")
        return v

    @model_validator(mode="after")
    def _check_type_and_default(self) -> V1IO:
        if self.type is not None:
            try:
                spec = parse_type(self.type, is_list=bool(self.is_list))
            except TypeSyntaxError as exc:
                raise error_at("type", str(exc)) from exc
            if self.value is not None:
                try:
                    parse_value(spec, self.value)
                except ValueParseError as exc:
                    raise error_at("value", str(exc)) from exc
        if self.is_flag and self.type != "bool":
            raise error_at("isFlag", f"IO type `{self.type}` cannot be a flag, it must be of type `bool`")
        return self

    @property
    def optional(self) -> bool:
        """Whether a run may leave this input out (it then gets `value`)."""
        return bool(self.is_optional)

    @property
    def delayed(self) -> bool:
        """Polyaxon's delayed validation: a missing required value is not an error at compile time."""
        return bool(self.delay_validation or (self.validation and self.validation.delay))

    @property
    def allowed_values(self) -> list[Any] | None:
        """The `options` a value must be one of, from either spelling."""
        if self.options is not None:
            return self.options
        return self.validation.options if self.validation else None


class V1Param(PolyaxonModel):
    """An operation's param. A bare value (`lr: 0.1`) is read as `{value: 0.1}`, as in Polyaxon."""

    value: Any = None
    context_only: bool | None = Field(default=None, alias="contextOnly")
    to_env: str | None = Field(default=None, alias="toEnv")

    # References to other runs and connections only exist on a Polyaxon server.
    _not_supported = frozenset({"ref", "connection", "toInit"})


PARAM_KEYS = frozenset({"value", "ref", "contextOnly", "context_only", "connection", "toInit", "to_init"})
PARAM_KEYS |= {"toEnv", "to_env"}


def normalise_param(value: Any) -> Any:
    """Polyaxon's short form: anything but a dict using V1Param's keys is the param's value."""
    if isinstance(value, V1Param):
        return value
    if value is None:
        return {"value": None}
    if isinstance(value, Mapping) and (not value or PARAM_KEYS & set(value)):
        return value
    return {"value": value}
