"""The topics `ensure_topics` creates are usable the moment it returns: every partition has a leader, so a
consumer subscribing at once gets its partitions (instead of aiokafka's 5-minute metadata wait), the ledger is
compacted, and a topic the broker refuses is a configuration error at once, not 30 s of retries."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.errors import ConfigError
from bridge.kafka.connection import ensure_topics

pytestmark = pytest.mark.kafka

NAMES = ("suggestions", "results", "operations", "dead_letters", "control", "ledger")


def fresh_topics() -> TopicsSettings:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return TopicsSettings(**{name: f"{prefix}.{name}" for name in NAMES})


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_every_partition_has_a_leader_when_ensure_topics_returns(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    for _ in range(3):  # without the wait, a broker often answers "unknown topic" for a moment after creating it
        topics = fresh_topics()
        names = list(topics.model_dump().values())
        await ensure_topics(kafka, topics, partitions=3, give_up_after_s=30, compacted=[topics.ledger])
        try:
            described = await admin.describe_topics(names)  # once, at once: nothing is waited for here
            led = {d["topic"]: sorted(p["partition"] for p in d["partitions"] if p["leader"] >= 0) for d in described}
            assert led == {name: [0, 1, 2] for name in names}
        finally:
            await admin.delete_topics(names)


async def test_a_consumer_subscribing_right_after_gets_its_partitions(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    topics = fresh_topics()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, group_id=f"g{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka, topics, partitions=2, give_up_after_s=30)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=kafka.group_id)
    await consumer.start()
    try:
        consumer.subscribe([topics.suggestions, topics.control])
        deadline = time.monotonic() + 30  # far below metadata_max_age_ms: a topic missed once is missed 5 min
        while len(consumer.assignment()) < 4:
            assert time.monotonic() < deadline, f"assigned only {consumer.assignment()}"
            await consumer.getmany(timeout_ms=200)
    finally:
        await consumer.stop()
        await admin.delete_topics(list(topics.model_dump().values()))


async def test_the_ledger_is_compacted_and_the_others_are_not(kafka_bootstrap: str, admin: AIOKafkaAdminClient) -> None:
    topics = fresh_topics()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    await ensure_topics(kafka, topics, partitions=1, give_up_after_s=30, compacted=[topics.ledger])
    try:
        policy = {}
        for name in (topics.ledger, topics.results):
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
            entries = {e[0]: e[1] for e in response.resources[0][4]}
            policy[name] = entries["cleanup.policy"]
        assert policy == {topics.ledger: "compact", topics.results: "delete"}
    finally:
        await admin.delete_topics(list(topics.model_dump().values()))


async def test_a_topic_the_broker_refuses_is_a_config_error_at_once(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    began = time.monotonic()
    with pytest.raises(ConfigError, match=r"refused to create topic .*InvalidReplicationFactor"):
        await ensure_topics(kafka, fresh_topics(), partitions=1, replication_factor=3, give_up_after_s=30)
    assert time.monotonic() - began < 10  # not retried until give_up_after_s
