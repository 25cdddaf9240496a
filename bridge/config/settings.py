"""The bridge's configuration: a YAML file, overridden by `BRIDGE_<SECTION>__<KEY>`, overridden by flags.

`load_settings` is the one way in. Whatever is wrong (an unreadable file, bad YAML, an unknown key, a value of
the wrong kind) comes out as one `ConfigError` line naming where it came from, the key path and what was
expected. Paths written in the file are relative to the file; those from the environment or flags, to the
working directory. Secrets are `SecretStr`: masked in repr, logs and dumps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bridge.config.sections import (
    BatchingSettings,
    ControlSettings,
    ExecutorSettings,
    HttpSettings,
    InlineSettings,
    KafkaSettings,
    LimitsSettings,
    TopicsSettings,
)
from bridge.contract.limits import Limits
from bridge.contract.messages import MAX_SUGGESTIONS, Name, field_path
from bridge.errors import ConfigError

ENV_PREFIX = "BRIDGE_"
ENV_DELIMITER = "__"

_FILE_PATHS = {"kafka": ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"), "": ("workdir",)}
"""The keys holding paths, by section ("" is the top level): in the file, they are relative to the file."""


class BridgeSettings(BaseSettings):
    """Everything `bridge serve` is configured with; build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        env_ignore_empty=True,  # an empty variable (a secret not mounted) means "not set", not ""
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    max_in_flight: int = Field(default=256, ge=1, description="Runs in flight before consumption pauses.")
    shutdown_grace_s: float = Field(default=30, ge=0)
    allow_inline_operations: bool = False
    inline: InlineSettings = Field(default_factory=InlineSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    workdir: Path = Field(default=Path(".bridge"), description="Runs' artifacts and the cache.")
    keep_runs_s: float = Field(
        default=86400, gt=0, description="`serve` removes a finished run's folder after this long idle."
    )
    max_run_folders: int = Field(default=10_000, ge=1, description="`serve` keeps at most this many run folders.")
    max_cache_entries: int = Field(
        default=100_000, ge=1, description="`serve` keeps at most this many cached results (oldest go first)."
    )
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_suggestions: int = Field(
        default=MAX_SUGGESTIONS, ge=1, le=MAX_SUGGESTIONS, description="The most suggestions in one message."
    )
    templates: dict[Name, dict[str, Any]] = Field(
        default_factory=dict,
        description="Operations by name, as in a polyaxonfile; paths relative to base_dir.",
    )
    base_dir: Path = Field(default_factory=Path.cwd, description="The config file's directory (set at load).")

    def message_limits(self) -> Limits:
        """The bounds of one record read from a topic."""
        return Limits(
            max_bytes=self.max_message_bytes,
            max_depth=self.limits.max_depth,
            max_string_length=self.limits.max_string_length,
            max_width=self.limits.max_width,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init arguments) over the environment over the YAML file; no dotenv, no secrets dir."""
        return init_settings, env_settings, _FileSource(settings_cls)


# The sources are built by a classmethod that sees no call arguments, so `load_settings` hands the file's
# content to `_FileSource` through this variable for the duration of one construction.
_FILE_DATA: ContextVar[Mapping[str, Any]] = ContextVar("_FILE_DATA", default=MappingProxyType({}))


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_DATA.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get())


def load_settings(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> BridgeSettings:
    """Read the config file (if any), the environment and `overrides`, or raise a one-line `ConfigError`.

    `overrides` holds flag values, nested (`{"kafka": {"group_id": "g"}}`) or dotted
    (`{"kafka.group_id": "g"}`); None values are flags not given and are ignored.
    """
    file_data = _read_file(path) if path is not None else {}
    base_dir = (path.parent if path is not None else Path.cwd()).resolve()
    flags = _nest(overrides or {})
    token = _FILE_DATA.set(_resolve_paths(file_data, base_dir))
    try:
        return BridgeSettings(**{**flags, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(include_url=False), path, file_data, flags)) from None
    except SettingsError as exc:  # a variable for a whole section or the templates does not hold JSON
        raise ConfigError(f"environment: {exc}; expected JSON".replace("\n", " ")) from None
    finally:
        _FILE_DATA.reset(token)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}: "
        problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}".replace("\n", " ")) from None
    if data is None:
        # Refused, not read as "all defaults": a file named with -c that holds nothing is the wrong file or a
        # truncated one, and a bridge started on defaults nobody chose would look healthy while serving nothing.
        raise ConfigError(
            f"{path}: the config file is empty; give its settings (at least `{{}}` for all defaults) or leave out -c"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (kafka, topics, ...), got {type(data).__name__}")
    for name, field in BridgeSettings.model_fields.items():
        # Checked here, before the environment is merged in: a variable's section would replace a bad one.
        section = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        if section and name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of keys, got {type(data[name]).__name__}")
    return data


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The file's data with its relative file paths made relative to the file's directory."""
    out = dict(data)
    for section, keys in _FILE_PATHS.items():
        values = out.get(section) if section else out
        if not isinstance(values, dict):
            continue  # not a mapping: validation reports it
        values = dict(values)
        for key in keys:
            if isinstance(values.get(key), str) and values[key]:
                values[key] = str(base_dir / Path(values[key]).expanduser())
        out = {**out, section: values} if section else values
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = dict(value) if isinstance(value, Mapping) else value
    return out


def _describe(
    errors: Sequence[ErrorDetails], path: Path | None, file_data: Mapping[str, Any], flags: Mapping[str, Any]
) -> str:
    first = errors[0]
    loc = tuple(first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    line = f"{_origin(loc, path, file_data, flags)}: {field_path(loc) or 'top level'}: {_expected(first)}{more}"
    return line.replace("\n", " ")


def _origin(
    loc: tuple[str | int, ...], path: Path | None, file_data: Mapping[str, Any], flags: Mapping[str, Any]
) -> str:
    """Which source set the value at `loc`, in the order of precedence."""
    env = ENV_PREFIX + ENV_DELIMITER.join(str(part) for part in loc).upper()
    env_names = [name.upper() for name in os.environ] if loc else []
    if loc and _has(flags, loc):
        return "command line"
    if env in env_names:
        return f"environment {env}"
    if path is not None and _has(file_data, loc):
        return str(path)
    if any(name.startswith(env + ENV_DELIMITER) for name in env_names):
        return f"environment {env}{ENV_DELIMITER}*"  # a section the variables below it made wrong
    return str(path) if path is not None else "configuration"


def _has(data: Any, loc: Sequence[str | int]) -> bool:
    for part in loc:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


def _expected(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return f"unknown key; expected one of {', '.join(known)}" if known else "unknown key"
    if error["type"] == "missing":
        return "required"
    text = error["msg"].removeprefix("Value error, ").replace("Input should be ", "expected ", 1)
    value = error.get("input")
    secret = any("password" in str(part) for part in loc)
    if isinstance(value, str | int | float | bool) and not secret and error["type"] != "value_error":
        text += f", got {value[:80] if isinstance(value, str) else value!r}"
    return text


def _known_keys(loc: Sequence[str | int]) -> list[str]:
    model: Any = BridgeSettings
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(model.model_fields)
