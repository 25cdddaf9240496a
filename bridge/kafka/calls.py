"""A call into aiokafka whose errors come out as the bridge's (`errors.kafka_error`), for the adapters that the
client, the operator commands and `tail` use (`reader`, `writer`, `lookups`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bridge.kafka.errors import kafka_error


@contextmanager
def as_bridge_errors(doing: str) -> Iterator[None]:
    """Raise what the body raises mapped into the bridge's tree (`Retryable`, `BrokerRefused`, `Fenced`); an
    error that is not Kafka's, and a cancellation, pass as they are."""
    try:
        yield
    except Exception as exc:
        mapped = kafka_error(exc, doing)
        if mapped is exc:
            raise
        raise mapped from exc
