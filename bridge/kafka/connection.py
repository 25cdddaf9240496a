"""aiokafka clients built from the bridge's settings, the topics it needs, and retries while the broker is away."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_delay, wait_exponential

from bridge.config import KafkaSettings, TopicsSettings
from bridge.errors import Retryable

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
            retry=retry_if_exception_type((KafkaConnectionError, KafkaError, OSError)),
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


async def ensure_topics(
    kafka: KafkaSettings,
    topics: TopicsSettings,
    *,
    partitions: int,
    give_up_after_s: float,
    compacted: Collection[str] = (),
) -> None:
    """Create the bridge's topics that do not exist yet (an existing topic is left as it is)."""

    async def create() -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=5000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [t for t in topics.model_dump().values() if t not in existing]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it meanwhile
                    await admin.create_topics(
                        [
                            NewTopic(
                                t,
                                num_partitions=partitions,
                                replication_factor=kafka.topic_replication_factor,
                                topic_configs={"cleanup.policy": "compact"} if t in compacted else {},
                            )
                            for t in wanted
                        ]
                    )
                log.info("topics_created", topics=wanted, partitions=partitions)
        finally:
            await admin.close()

    await with_broker_retry(
        "create its topics", create, give_up_after_s=give_up_after_s, servers=kafka.bootstrap_servers
    )
