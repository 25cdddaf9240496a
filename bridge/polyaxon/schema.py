"""The polyaxonfile models: operation, component, inputs/outputs, params and the job to run.

Field names follow Polyaxon (camelCase in YAML, snake_case here). Keys Polyaxon knows but that make no
difference to a local or Ray run are accepted and dropped; keys that would change what runs are refused with a
NotSupported error naming them; anything else is rejected as in Polyaxon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr, StrictStr, field_validator, model_validator

from bridge.errors import Problem
from bridge.polyaxon.automation import V1Cache, V1Mapping, V1Termination
from bridge.polyaxon.base import PolyaxonModel, error_at, split_str_list
from bridge.polyaxon.types import TypeSyntaxError, ValueParseError, parse_type, parse_value

NAME_PATTERN = r"^[-a-zA-Z0-9_]+$"

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


class V1EnvVar(PolyaxonModel):
    """An environment variable of the container; `value` may be a template."""

    name: StrictStr
    value: str | None = None

    _not_supported = frozenset({"valueFrom"})

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_text(cls, v: Any) -> Any:
        # YAML reads `value: 1` as a number; Kubernetes would refuse it, a local run can take its text.
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return v


def _str_or_str_list(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(item, str | int | float) for item in v):
        # YAML reads `- 5` as a number; the argv element is its text.
        return [item if isinstance(item, str) else str(item) for item in v]
    raise ValueError("must be a string or a list of strings")


class V1Container(PolyaxonModel):
    """The process to run. `command`/`args` render to one argv, never through a shell."""

    name: str | None = None
    image: str | None = None
    command: list[str] | str | None = None
    args: list[str] | str | None = None
    env: list[V1EnvVar] | None = None
    working_dir: str | None = Field(default=None, alias="workingDir")
    resources: dict[str, Any] | None = None

    _ignored = frozenset({"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy"})
    _not_supported = frozenset(
        {"envFrom", "volumeMounts", "volumeDevices", "ports", "lifecycle", "livenessProbe", "readinessProbe"}
        | {"startupProbe", "securityContext", "stdin", "stdinOnce", "tty", "resizePolicy", "restartPolicy"}
    )

    _check_command = field_validator("command", "args", mode="before")(_str_or_str_list)


class V1GitInit(PolyaxonModel):
    """A git repository to clone before the run."""

    url: str | None = None
    revision: str | None = None
    flags: list[str] | None = None

    _not_supported = frozenset({"connection"})


class V1Init(PolyaxonModel):
    """One init step. Only `git` (with an optional `path`, relative to the artifacts path) is run."""

    git: V1GitInit | None = None
    path: str | None = None

    _not_supported = frozenset(
        {"artifacts", "paths", "dockerfile", "file", "tensorboard", "lineageRef", "modelRef", "artifactRef"}
        | {"connection", "container"}
    )

    @model_validator(mode="after")
    def _needs_git(self) -> V1Init:
        if self.git is None:
            raise ValueError("an init step needs `git` (the only init kind the bridge runs)")
        return self


class V1Job(PolyaxonModel):
    """`run: {kind: job}`: init steps, then one container."""

    kind: Literal["job"]
    init: list[V1Init] | None = None
    container: V1Container

    # Node selectors, tolerations, service accounts...: how Kubernetes places a pod, nothing a process uses.
    _ignored = frozenset({"environment"})
    _not_supported = frozenset({"connections", "volumes", "sidecars"})

    @field_validator("kind", mode="before")
    @classmethod
    def _only_jobs(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "job":
            raise ValueError(f"run kind `{v}` is not supported by the bridge; only `job` is")
        return v


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
