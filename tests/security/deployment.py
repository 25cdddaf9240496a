"""A bridge deployed on the secure broker the way deploy/kafka/ACLS.md says: topics made by the admin, the ACLs of
that page granted with `kafka.sh tool acls`, and `bridge serve` as a real process logging in as `bridge`.

- `grant_bridge`, `grant_optimizer`, `grant_suggestion_writer`: the page's commands, for one deployment's names.
- `SecureDeployment.create(...)`: fresh topics and group, the ACLs, a config file with the password in
  `sasl_password_file`; `.bridge` is the process (`tests/faults/harness.Replica`), not yet started.
  `.bridge_with_password_in_env()`: another process of the same deployment, given its password the way
  deploy/k8s does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.config.settings import BridgeSettings
from bridge.kafka.connection import wait_for_leaders
from tests.faults.harness import Replica
from tests.kafka_broker import SecureKafkaBroker
from tests.service.service_support import service_settings

BRIDGE_USER = "bridge"


def grant_bridge(topics: TopicsSettings, group_id: str) -> list[list[str]]:
    """The bridge alone writes what it publishes, reads its inputs and ledger in its group, owns its
    transactional ids (`<group_id>.<topic>.<partition>`, one prefixed ACL)."""
    principal = ["--add", "--allow-principal", f"User:{BRIDGE_USER}"]
    return [
        [
            *principal,
            "--operation",
            "Write",
            *_topics(topics.results, topics.operations, topics.dead_letters, topics.ledger),
        ],
        [
            *principal,
            "--operation",
            "Read",
            *_topics(topics.suggestions, topics.control, topics.ledger),
            "--group",
            group_id,
        ],
        [
            *principal,
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--transactional-id",
            f"{group_id}.",
            "--resource-pattern-type",
            "prefixed",
        ],
    ]


def grant_optimizer(topics: TopicsSettings, principal: str = "optimizer") -> list[list[str]]:
    """An optimizer sends suggestions and control messages and reads results (without a consumer group)."""
    allow = ["--add", "--allow-principal", f"User:{principal}"]
    return [
        [*allow, "--operation", "Write", *_topics(topics.suggestions, topics.control)],
        [*allow, "--operation", "Read", *_topics(topics.results)],
    ]


def grant_suggestion_writer(topics: TopicsSettings, principal: str) -> list[list[str]]:
    """A principal that may write suggestions and nothing else (the intruder of the tests)."""
    return [["--add", "--allow-principal", f"User:{principal}", "--operation", "Write", *_topics(topics.suggestions)]]


def _topics(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--topic", name)]


def apply_acls(broker: SecureKafkaBroker, commands: Sequence[Sequence[str]]) -> None:
    """Run each `kafka-acls --add ...` as the admin; side by side, since each is a JVM start (about 1 s)."""
    with ThreadPoolExecutor(max_workers=len(commands) or 1) as pool:
        list(pool.map(lambda args: broker.tool("acls", *args), commands))


async def create_topics(broker: SecureKafkaBroker, topics: TopicsSettings, partitions: int) -> None:
    """The deployment's topics, made by the admin beforehand (so the bridge needs no Create); the ledger
    compacted, as the bridge would make it."""
    admin = AIOKafkaAdminClient(**broker.client_kwargs("admin"))
    await admin.start()
    try:
        names = list(topics.model_dump().values())
        compact = {"cleanup.policy": "compact"}
        response = await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=compact if n == topics.ledger else {}) for n in names]
        )
        refused = [(topic, code) for topic, code, *_ in response.topic_errors if code != 0]
        assert not refused, f"the admin could not create the topics: {refused}"
        await wait_for_leaders(admin, dict.fromkeys(names, partitions), timeout_s=30)
    finally:
        await admin.close()


def kafka_settings(broker: SecureKafkaBroker, user: str) -> KafkaSettings:
    """The bridge's own Kafka settings for `user` (for `BridgeClient`), password given inline."""
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=SecretStr(broker.passwords[user]),
        ssl_cafile=broker.ca_file,
    )


@dataclass
class SecureDeployment:
    """One bridge on the secure broker: its settings (fresh topics and group), its process, its password."""

    broker: SecureKafkaBroker
    settings: BridgeSettings
    bridge: Replica

    @property
    def password(self) -> str:
        """The bridge principal's password: what must never leak."""
        return self.broker.passwords[BRIDGE_USER]

    @classmethod
    def create(
        cls,
        broker: SecureKafkaBroker,
        root: Path,
        *,
        templates: Mapping[str, Any] | None = None,
        suggestion_writers: Sequence[str] = (),
        partitions: int = 1,
    ) -> SecureDeployment:
        """Topics, ACLs and a config file whose Kafka section logs in as `bridge` over SASL_SSL, with the
        password from `sasl_password_file`; `templates` beside the test job `job`.

        `suggestion_writers`: principals that may write suggestions and nothing else. One partition per topic
        by default, so one message served after a restart shows that the whole ledger was reconciled.
        """
        root.mkdir(parents=True, exist_ok=True)
        secret = root / "kafka-password"
        secret.touch(mode=0o600)
        secret.write_text(broker.passwords[BRIDGE_USER] + "\n")
        kafka: dict[str, Any] = {
            "bootstrap_servers": broker.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": BRIDGE_USER,
            "ssl_cafile": str(broker.ca_file),
            "sasl_password_file": str(secret),
        }
        overrides: dict[str, Any] = {"kafka": kafka}
        if templates is not None:
            overrides["templates"] = dict(templates)
        settings = service_settings(broker.bootstrap, root, **overrides)
        asyncio.run(create_topics(broker, settings.topics, partitions))
        apply_acls(
            broker,
            [
                *grant_bridge(settings.topics, settings.kafka.group_id),
                *grant_optimizer(settings.topics),
                *(acl for writer in suggestion_writers for acl in grant_suggestion_writer(settings.topics, writer)),
            ],
        )
        return cls(broker, settings, Replica("secure", root / "bridge.yaml", root))

    def bridge_with_password_in_env(self) -> Replica:
        """Another `bridge serve` of this deployment (same topics, group and ACLs) whose config holds no
        password: the caller sets `BRIDGE_KAFKA__SASL_PASSWORD` when it starts, as deploy/k8s's `envFrom` does."""
        data = json.loads(self.bridge.config.read_text())  # service_settings writes JSON, which is YAML
        del data["kafka"]["sasl_password_file"]
        config = self.bridge.root / "bridge-env.yaml"
        config.write_text(json.dumps(data))
        return Replica("secure-env", config, self.bridge.root)
