"""The polyaxonfile models: operation and component (their inputs and params are in inputs.py, the job to run
in job.py).

Field names follow Polyaxon (camelCase in YAML, snake_case here). Keys Polyaxon knows but that make no
difference to a local or Ray run are accepted and dropped; keys that would change what runs are refused with a
NotSupported error naming them; anything else is rejected as in Polyaxon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from bridge.errors import Problem
from bridge.polyaxon.automation import V1Cache, V1Mapping, V1Termination
from bridge.polyaxon.base import PolyaxonModel, split_str_list
from bridge.polyaxon.inputs import V1IO, V1Param, normalise_param
from bridge.polyaxon.job import V1Job

NAME_PATTERN = r"^[-a-zA-Z0-9_]+$"


class _Common(PolyaxonModel):
    """What components and operations share."""

    version: float | None = None
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str | None = None
    tags: list[str] | None = None
    strict_params: bool | None = Field(default=None, alias="strictParams")
    cache: V1Cache | None = None
    termination: V1Termination | None = None

    _tags = field_validator("tags", mode="before")(split_str_list)


# Scheduling and cluster hints: meaningless for a local or Ray run, harmless to drop.
_HARMLESS = frozenset({"presets", "queue", "namespace", "plugins", "isApproved", "cost", "template"})
# Features that would change what runs or when: refused by name.
_REFUSED = frozenset({"hooks", "build", "mount"})


class V1Component(_Common):
    """A component: typed inputs/outputs and the job that runs them."""

    kind: Literal["component"] = "component"
    inputs: list[V1IO] | None = None
    outputs: list[V1IO] | None = None
    run: V1Job

    _ignored = _HARMLESS
    _not_supported = _REFUSED | {"contexts"}

    @model_validator(mode="after")
    def _unique_io_names(self) -> V1Component:
        names = [io.name for io in (self.inputs or []) + (self.outputs or [])]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"inputs/outputs declared more than once: {', '.join(duplicates)}")
        return self

    @property
    def io(self) -> list[V1IO]:
        """Inputs then outputs."""
        return [*(self.inputs or []), *(self.outputs or [])]


class V1Operation(_Common):
    """An operation: params and helpers (matrix, cache, termination) over a component.

    After `load_operation`/`parse_operation`, `component` is always set: a `pathRef`/`urlRef` is resolved and
    kept beside it for the record.
    """

    kind: Literal["operation"] = "operation"
    params: dict[str, V1Param] | None = None
    matrix: V1Mapping | None = None
    component: V1Component | None = None
    path_ref: str | None = Field(default=None, alias="pathRef")
    url_ref: str | None = Field(default=None, alias="urlRef")
    hub_ref: str | None = Field(default=None, alias="hubRef")
    dag_ref: str | None = Field(default=None, alias="dagRef")

    _ignored = _HARMLESS | {"patchStrategy", "skipOnUpstreamSkip"}
    _not_supported = (
        _REFUSED
        | {"schedule", "events", "joins", "dependencies", "trigger", "conditions"}
        | {
            "runPatch",
            "isPreset",
        }
    )

    @field_validator("params", mode="before")
    @classmethod
    def _short_form_params(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: normalise_param(p) for k, p in v.items()}
        return v

    @model_validator(mode="after")
    def _at_most_one_reference(self) -> V1Operation:
        refs = [n for n, v in (("pathRef", self.path_ref), ("urlRef", self.url_ref)) if v]
        refs += [n for n, v in (("hubRef", self.hub_ref), ("dagRef", self.dag_ref)) if v]
        if len(refs) > 1:
            raise ValueError("At most one reference may be specified: hubRef, dagRef, urlRef, pathRef.")
        return self

    # What was accepted but is worth telling the user (set by the loader; see warnings.py).
    _warnings: tuple[Problem, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> list[Problem]:
        """Things accepted as Polyaxon does that do nothing here or look unintended, each at its path."""
        return list(self._warnings)

    def with_warnings(self, warnings: list[Problem]) -> V1Operation:
        """A copy carrying `warnings`."""
        copy = self.model_copy()
        copy._warnings = tuple(warnings)
        return copy

    @property
    def effective_strict_params(self) -> bool:
        """The operation's `strictParams`, else the component's."""
        if self.strict_params is not None:
            return self.strict_params
        return bool(self.component and self.component.strict_params)

    @property
    def effective_cache(self) -> V1Cache | None:
        """The component's cache settings with the operation's set fields over them."""
        return _merge(self.component.cache if self.component else None, self.cache)

    @property
    def effective_termination(self) -> V1Termination | None:
        """The component's termination settings with the operation's set fields over them."""
        return _merge(self.component.termination if self.component else None, self.termination)


_M = TypeVar("_M", V1Cache, V1Termination)


def _merge(base: _M | None, over: _M | None) -> _M | None:
    if base is None or over is None:
        return over if base is None else base
    return base.model_copy(update={k: v for k, v in over.model_dump().items() if v is not None})
