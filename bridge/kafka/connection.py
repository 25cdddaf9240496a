"""aiokafka clients built from the bridge's settings, the topics it needs, and retries while the broker is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError
from aiokafka.helpers import create_ssl_context
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_delay, wait_exponential

from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.errors import Retryable
from bridge.kafka.errors import broker_away, raise_for_topic_errors

log = structlog.get_logger(__name__)
T = TypeVar("T")


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """What every aiokafka client of the bridge is constructed with: servers, identity, security."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
            certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
            keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
        )
    if kafka.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return kwargs


async def with_broker_retry(
    what: str, action: Callable[[], Awaitable[T]], *, give_up_after_s: float, servers: str
) -> T:
    """Run `action`, retrying with exponential backoff while the broker cannot be reached, then raise
    `Retryable` with one clear sentence."""
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(broker_away),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(give_up_after_s),
            reraise=False,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning("broker_retry", what=what, attempt=attempt.retry_state.attempt_number)
                return await action()
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise Retryable(f"cannot reach Kafka at {servers} to {what} after {give_up_after_s:g} s: {cause}") from cause
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises


COMPACT: Final[Mapping[str, str]] = MappingProxyType({"cleanup.policy": "compact"})
LEADER_POLL_S = 0.05


async def ensure_topics(
    kafka: KafkaSettings,
    topics: TopicsSettings,
    *,
    partitions: int,
    give_up_after_s: float,
    replication_factor: int | None = None,
    compacted: Collection[str] = (),
) -> None:
    """Create the bridge's topics that do not exist yet (an existing topic is left as it is), `compacted` ones
    with `cleanup.policy=compact`, and return once every topic that was missing has a leader for each partition.

    `replication_factor` None is `kafka.topic_replication_factor`. A topic the broker refuses to create
    (replication factor above the brokers, a policy, no authorization) raises `ConfigError` at once; a broker
    away, or leaders still missing after `give_up_after_s`, raises `Retryable`.
    """
    replicas = kafka.topic_replication_factor if replication_factor is None else replication_factor
    names = list(topics.model_dump().values())
    deadline = time.monotonic() + give_up_after_s
    # Topics found missing, by this call or an earlier attempt of it: partitions expected (None: as another
    # replica made it). Kept across retries: a retry finds them existing, but maybe still without leaders.
    fresh: dict[str, int | None] = {}

    async def create() -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=5000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in names if t not in existing]
            if missing:
                fresh.update(dict.fromkeys(missing, partitions))
                response = await admin.create_topics(
                    [
                        NewTopic(t, partitions, replicas, topic_configs=dict(COMPACT) if t in compacted else {})
                        for t in missing
                    ]
                )
                for topic in raise_for_topic_errors(response.topic_errors):
                    fresh[topic] = None  # another replica created it meanwhile
                log.info(
                    "topics_created",
                    topics=missing,
                    partitions=partitions,
                    replication_factor=replicas,
                    compacted=[t for t in missing if t in compacted],
                )
            # Every topic, not only those this call created: another replica starting at the same moment may have
            # created them an instant before, and a consumer that subscribes before they have leaders gets no
            # partitions of them until its next metadata refresh (minutes away).
            wanted: dict[str, int | None] = {**dict.fromkeys(names), **fresh}
            await wait_for_leaders(admin, wanted, timeout_s=max(0.0, deadline - time.monotonic()))
        finally:
            await admin.close()

    await with_broker_retry(
        "create its topics", create, give_up_after_s=give_up_after_s, servers=kafka.bootstrap_servers
    )


async def wait_for_leaders(admin: AIOKafkaAdminClient, topics: Mapping[str, int | None], *, timeout_s: float) -> None:
    """Return once the broker's metadata gives every topic of `topics` (name -> partitions, None: any number)
    a leader for each of its partitions; raise `KafkaTimeoutError` naming what still lacks one after
    `timeout_s`.

    `create_topics` returns when the controller has a topic, not when the brokers serve it: a consumer that
    subscribes before then is told the topic is not in the cluster's metadata, and aiokafka looks again only
    after `metadata_max_age_ms` (5 minutes by default), leaving the consumer without partitions until then.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        leaderless = _leaderless(await admin.describe_topics(list(topics)), topics)
        if not leaderless:
            return
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"no partition leader after {timeout_s:g} s for {', '.join(leaderless)}")
        await asyncio.sleep(LEADER_POLL_S)


def _leaderless(described: list[dict[str, Any]], wanted: Mapping[str, int | None]) -> list[str]:
    """`topic` or `topic[partition]` for each topic or partition of `wanted` without a leader yet."""
    by_name = {d["topic"]: d for d in described}
    missing: list[str] = []
    for name, partitions in wanted.items():
        d = by_name.get(name)
        if d is None or d["error_code"] != 0 or not d["partitions"]:
            missing.append(name)
            continue
        led = {p["partition"] for p in d["partitions"] if p["error_code"] == 0 and p["leader"] >= 0}
        expected = range(partitions) if partitions is not None else (p["partition"] for p in d["partitions"])
        missing += [f"{name}[{p}]" for p in expected if p not in led]
    return missing
