"""aiokafka's errors, mapped into the bridge's tree (`bridge.errors`) at the boundary, in one place.

ProducerFenced                        -> Fenced       another replica owns the partition: never retried
retriable KafkaError, KafkaTimeoutError,
KafkaConnectionError, TimeoutError, OSError -> Retryable    the broker is away for a while: backoff, then report
any other KafkaError                  -> BrokerRefused the broker said no for good (authorization, size, ...)
asyncio.CancelledError                -> itself       a cancellation is never reported as anything else
"""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, ProducerFenced

from bridge.errors import BridgeError, BrokerRefused, Fenced, Retryable


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
