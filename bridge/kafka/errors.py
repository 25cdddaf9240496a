"""aiokafka's errors, mapped into the bridge's tree (`bridge.errors`) at the boundary, in one place: every other
module of bridge/kafka/ asks this one what an aiokafka error means.

ProducerFenced                        -> Fenced       another replica owns the partition: never retried
retriable KafkaError, KafkaTimeoutError,
KafkaConnectionError, TimeoutError, OSError -> Retryable    the broker is away for a while: backoff, then report
any other KafkaError                  -> BrokerRefused the broker said no for good (authorization, size, ...)
asyncio.CancelledError                -> itself       a cancellation is never reported as anything else
InconsistentGroupProtocolError        -> ConfigError  the group's members assign partitions another way
                                                      (`group_protocol_refused`, the consumer's poll)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InconsistentGroupProtocolError,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from bridge.errors import BridgeError, BrokerRefused, ConfigError, Fenced, Retryable

RECORD_REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
)
"""What the broker says of one record it will never take. Only these leave a record out of its transaction: any
other error (aiokafka's bare "Unexpected error during batch delivery" after a broker restart among them) says
nothing about the record, and the whole batch is tried again."""


def kafka_error(exc: BaseException, doing: str) -> BaseException:
    """The bridge's error for `exc`, raised while `doing` (a few words); anything not Kafka's comes back as is."""
    if isinstance(exc, asyncio.CancelledError | BridgeError):
        return exc
    text = f"{doing}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ProducerFenced):
        return Fenced(text)
    if worth_retrying(exc):
        return Retryable(text)
    if isinstance(exc, KafkaError):
        return BrokerRefused(text)
    return exc


@contextmanager
def as_bridge_errors(doing: str) -> Iterator[None]:
    """Raise what the body raises mapped by `kafka_error` (`Retryable`, `BrokerRefused`, `Fenced`); an error that
    is not Kafka's, and a cancellation, pass as they are. The adapters of the client, the operator commands and
    `tail` (reader.py, writer.py, lookups.py) call aiokafka inside it."""
    try:
        yield
    except Exception as exc:
        mapped = kafka_error(exc, doing)
        if mapped is exc:
            raise
        raise mapped from exc


def worth_retrying(exc: BaseException) -> bool:
    """Whether trying again later may succeed: the broker or the network was away, not a refusal."""
    if isinstance(exc, ProducerFenced):
        return False
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | TimeoutError | OSError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


def publishing_may_go_on(exc: BaseException) -> bool:
    """Whether a publisher tries its transaction again after `exc` (already mapped by `kafka_error`).

    Only a fenced producer stops for good. A broker that is away is waited for, and so is one that refused a
    request (`BrokerRefused`: after a broker restart aiokafka reports "Unexpected error during batch delivery"
    as one): a record refused for good is left out of the batch before it is tried again, and a partition that
    still cannot publish after the retry window is named by `/readyz`.
    """
    return isinstance(exc, Retryable | BrokerRefused)


def from_the_broker(exc: BaseException | None) -> bool:
    """Whether `exc` is the broker's (or aiokafka's) word, rather than the bridge's or the network's."""
    return isinstance(exc, KafkaError)


def refuses_the_record(exc: BaseException | None) -> bool:
    """Whether `exc` says the broker will never take the one record it was raised for (`RECORD_REFUSALS`)."""
    return isinstance(exc, RECORD_REFUSALS)


def broker_away(exc: BaseException) -> bool:
    """What `connection.with_broker_retry` waits out while connecting: any error of the broker or the network."""
    return isinstance(exc, KafkaError | OSError)


def raise_for_topic_errors(topic_errors: list[tuple[Any, ...]]) -> list[str]:
    """The topics that already existed; raise for any other per-topic error of a CreateTopics response
    (aiokafka returns them, it does not raise): a retriable one as itself, the others as `ConfigError`."""
    existed: list[str] = []
    for topic, code, *rest in topic_errors:
        if code == 0:
            continue
        if code == TopicAlreadyExistsError.errno:
            existed.append(topic)
            continue
        error = for_code(code)
        detail = rest[0] if rest and rest[0] else error.description
        if error.retriable:
            raise error(f"creating topic {topic}: {detail}")
        raise ConfigError(f"Kafka refused to create topic {topic}: {error.__name__}: {detail}")
    return existed


def group_protocol_refused(exc: BaseException, group: str) -> ConfigError | None:
    """The bridge's error when the group coordinator refused to let this consumer join `group` because its members
    assign partitions another way (round robin: a bridge older than the co-partitioned stops); else None."""
    if not isinstance(exc, InconsistentGroupProtocolError):
        return None
    return ConfigError(
        f"the consumer group {group} has members that assign partitions another way (round robin: a"
        " bridge older than the co-partitioned stops); stop them before starting replicas of this version"
    )


def topic_authorized(error_code: int) -> bool:
    """Whether a DescribeTopics per-topic error code lets this principal see the topic (aiokafka returns the
    codes, it does not raise)."""
    return bool(error_code != TopicAuthorizationFailedError.errno)
