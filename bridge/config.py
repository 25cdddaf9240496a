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
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bridge.errors import ConfigError
from bridge.limits import Limits
from bridge.messages import MAX_SUGGESTIONS, Name, field_path

ENV_PREFIX = "BRIDGE_"
ENV_DELIMITER = "__"
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"

_FILE_PATHS = {"kafka": ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"), "": ("workdir",)}
"""The keys holding paths, by section ("" is the top level): in the file, they are relative to the file."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """How to reach the brokers, and as whom."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1, description="host:port[,host:port]")
    group_id: str = Field(default="suggestion-bridge", min_length=1)
    client_id: str = Field(default="suggestion-bridge", min_length=1)
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of the topics the bridge creates.")
    topic_replication_factor: int = Field(default=1, ge=1, description="Replicas of the topics it creates.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: FilePath | None = Field(
        default=None, description="A file holding the SASL password (a mounted secret); read at load."
    )
    ssl_cafile: FilePath | None = None
    ssl_certfile: FilePath | None = None
    ssl_keyfile: FilePath | None = None

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("sasl_password_file") is None:
            return data
        if data.get("sasl_password") is not None:
            raise ValueError("set sasl_password or sasl_password_file, not both")
        path = Path(data["sasl_password_file"])
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"sasl_password_file: cannot read {path}: {exc}") from None
        return {**data, "sasl_password": password}

    @model_validator(mode="after")
    def _coherent(self) -> KafkaSettings:
        protocol = self.security_protocol
        sasl: dict[str, object] = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password (or sasl_password_file)": self.sasl_password,
        }
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(f"security_protocol {protocol} needs {', '.join(missing)}")
        elif any(value is not None for value in sasl.values()):
            raise ValueError(f"SASL settings are set but security_protocol is {protocol}, not SASL_*")
        ssl_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not protocol.endswith("SSL") and any(f is not None for f in ssl_files):
            # A CA file beside a plaintext protocol reads like TLS while nothing is encrypted.
            raise ValueError(f"ssl files are set but security_protocol is {protocol}; use SSL or SASL_SSL")
        return self


class TopicsSettings(_Section):
    """The five topics' names; they must differ, or the bridge would read what it writes."""

    suggestions: str = Field(default="bridge.suggestions", pattern=TOPIC_PATTERN)
    results: str = Field(default="bridge.results", pattern=TOPIC_PATTERN)
    operations: str = Field(default="bridge.operations", pattern=TOPIC_PATTERN)
    dead_letters: str = Field(default="bridge.dlq", pattern=TOPIC_PATTERN)
    control: str = Field(default="bridge.control", pattern=TOPIC_PATTERN)
    ledger: str = Field(
        default="bridge.ledger",
        pattern=TOPIC_PATTERN,
        description="The compacted run ledger (received, dispatched, finished), partitioned like suggestions.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> TopicsSettings:
        names = list(self.model_dump().values())
        shared = sorted({name for name in names if names.count(name) > 1})
        if shared:
            raise ValueError(f"every topic needs its own name; {', '.join(shared)} is used twice")
        return self


class BatchingSettings(_Section):
    """Suggestions of one study and template within `linger_ms` share an operation of `max_configs` runs."""

    linger_ms: int = Field(default=200, ge=0)
    max_configs: int = Field(default=64, ge=1)


class ExecutorSettings(_Section):
    """Where runs run: `local` subprocesses, or tasks on the Ray cluster at `address`."""

    kind: Literal["local", "ray"] = "local"
    max_parallel: int = Field(default=4, ge=1)
    address: str | None = None
    env_passthrough: list[str] = Field(
        default_factory=list,
        description="Variables of the bridge's own environment a run also gets (beside PATH, HOME, LANG and the"
        " like, the template's env and BRIDGE_RUN_*); a name ending in * passes every variable it starts."
        " BRIDGE_* settings are never passed.",
    )


class HttpSettings(_Section):
    """The health, readiness and metrics endpoints (port 0: any free port)."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    stall_after_s: float = Field(
        default=30.0, gt=0, description="/healthz fails after this long without consumption progress."
    )


class LimitsSettings(_Section):
    """What one record from a topic may hold: past any limit it is a dead letter naming the limit."""

    max_depth: int = Field(default=32, ge=2, le=200, description="Nesting of objects and arrays in a message.")
    max_string_length: int = Field(default=65536, ge=16, description="Characters in any one string or key.")
    max_width: int = Field(default=10_000, ge=16, description="Entries in any one object or array.")
    max_record_bytes: int = Field(
        default=900_000,
        ge=65536,
        description="The largest record the bridge writes; the broker's message.max.bytes must allow it.",
    )
    max_excerpt_bytes: int = Field(
        default=65536,
        ge=256,
        description="A dead letter keeps the original bytes up to this; past it, a prefix and the record's place.",
    )


class ControlSettings(_Section):
    """Who may stop runs through the control topic."""

    token: SecretStr | None = Field(
        default=None, description="When set, a control message must carry it (`token`), or it is a dead letter."
    )


class InlineSettings(_Section):
    """Guards on inline operations (when `allow_inline_operations` is true) and their `urlRef` components."""

    fetch_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Total deadline of one urlRef fetch.")
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts or networks (CIDR) a urlRef may reach although loopback, private or link-local.",
    )
    render_timeout_s: float = Field(default=2.0, gt=0, le=60, description="Time budget to render one run.")


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
