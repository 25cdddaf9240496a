"""The sections of the bridge's configuration (`kafka:`, `topics:`, `executor:`...): one model each, frozen, with
every key's default and bounds. config.py assembles them into `BridgeSettings` and loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, model_validator

from bridge.contract.topics import DEFAULT_TOPICS

TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class KafkaSettings(_Section):
    """How to reach the brokers, and as whom."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1, description="host:port[,host:port]")
    group_id: str = Field(default="suggestion-bridge", min_length=1)
    client_id: str = Field(default="suggestion-bridge", min_length=1)
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of the topics the bridge creates.")
    topic_replication_factor: int = Field(default=1, ge=1, description="Replicas of the topics it creates.")
    commit_interval_ms: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="The least time between two transactions of one partition's publisher: what arrives meanwhile"
        " (results, ledger records, offsets) is committed together. Longer: fewer transactions for the broker per"
        " result, and each result visible that much later; a run's start waits for no commit (benchmarks/"
        "one_study.py measures the trade).",
    )
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

    suggestions: str = Field(default=DEFAULT_TOPICS["suggestions"], pattern=TOPIC_PATTERN)
    results: str = Field(default=DEFAULT_TOPICS["results"], pattern=TOPIC_PATTERN)
    operations: str = Field(default=DEFAULT_TOPICS["operations"], pattern=TOPIC_PATTERN)
    dead_letters: str = Field(default=DEFAULT_TOPICS["dead_letters"], pattern=TOPIC_PATTERN)
    control: str = Field(default=DEFAULT_TOPICS["control"], pattern=TOPIC_PATTERN)
    ledger: str = Field(
        default=DEFAULT_TOPICS["ledger"],
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
