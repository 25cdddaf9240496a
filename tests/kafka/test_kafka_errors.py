"""aiokafka's errors in the bridge's tree, and which ones a publisher outlasts: only a fenced one stops it."""

from __future__ import annotations

import asyncio

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    ProducerFenced,
)

from bridge.errors import BrokerRefused, Fenced, Retryable
from bridge.kafka.errors import kafka_error, publishing_may_go_on


def test_each_kafka_error_lands_in_the_bridges_tree() -> None:
    assert isinstance(kafka_error(ProducerFenced(), "commit"), Fenced)
    assert isinstance(kafka_error(KafkaConnectionError(), "commit"), Retryable)
    assert isinstance(kafka_error(NotEnoughReplicasError(), "commit"), Retryable)
    assert isinstance(kafka_error(TimeoutError(), "commit"), Retryable)
    assert isinstance(kafka_error(MessageSizeTooLargeError(), "commit"), BrokerRefused)
    assert "commit" in str(kafka_error(KafkaConnectionError(), "commit"))


def test_a_cancellation_and_anything_not_kafkas_stay_what_they_are() -> None:
    cancelled = asyncio.CancelledError()
    assert kafka_error(cancelled, "commit") is cancelled
    other = ValueError("x")
    assert kafka_error(other, "commit") is other


def test_a_publisher_outlasts_everything_but_a_fence() -> None:
    # After a broker restart aiokafka reports a plain KafkaError ("Unexpected error during batch delivery"):
    # giving up on it abandoned a partition (tests/faults/test_broker_restart.py).
    transient = kafka_error(KafkaError("Unexpected error during batch delivery"), "commit")
    assert publishing_may_go_on(transient)
    assert publishing_may_go_on(kafka_error(KafkaConnectionError(), "commit"))
    assert not publishing_may_go_on(kafka_error(ProducerFenced(), "commit"))


def test_only_a_record_level_refusal_leaves_a_record_out() -> None:
    from bridge.kafka.base import Outgoing
    from bridge.kafka.publisher import _refused

    loop = asyncio.new_event_loop()
    try:
        batch = [Outgoing("t", b"k", b"v1"), Outgoing("t", b"k", b"v2")]
        bare, too_large = loop.create_future(), loop.create_future()
        bare.set_exception(KafkaError("Unexpected error during batch delivery"))
        too_large.set_exception(MessageSizeTooLargeError())
        # A bare error says nothing about the record: the whole batch is tried again (dropping it lost a result).
        assert _refused(batch, [bare, bare], KafkaError()) == []
        assert _refused(batch, [bare, too_large], KafkaError()) == [batch[1]]
    finally:
        loop.close()
