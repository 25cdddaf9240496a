"""aiokafka's errors in the bridge's tree, and which ones a publisher outlasts: only a fenced one stops it."""

from __future__ import annotations

import asyncio

from aiokafka.errors import (
    InconsistentGroupProtocolError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    ProducerFenced,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from bridge.errors import BrokerRefused, ConfigError, Fenced, Retryable
from bridge.kafka.errors import group_protocol_refused, kafka_error, publishing_may_go_on, topic_authorized


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


def test_a_group_of_members_assigning_another_way_is_a_config_error_naming_the_group() -> None:
    refused = group_protocol_refused(InconsistentGroupProtocolError(), "bridge-group")
    assert isinstance(refused, ConfigError)
    assert "bridge-group" in str(refused) and "assign partitions another way" in str(refused)
    assert group_protocol_refused(KafkaConnectionError(), "bridge-group") is None


def test_only_an_authorization_code_hides_a_topic() -> None:
    assert topic_authorized(0)
    assert topic_authorized(UnknownTopicOrPartitionError.errno)
    assert not topic_authorized(TopicAuthorizationFailedError.errno)
