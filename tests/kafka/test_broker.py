"""What the bridge's exactly-once design takes from the broker, shown against the real one.

These are facts about Kafka and aiokafka, not about the bridge: if one of them fails, the design built on
them (transactional results, offsets committed in the same transaction, resumption after a broker restart)
cannot hold.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced, UnknownTopicOrPartitionError

from tests.kafka_broker import ExternalKafkaBroker, KafkaBroker, TopicFactory, read_topic
from tests.polling import reaches

pytestmark = pytest.mark.kafka

Records = list[ConsumerRecord[bytes, bytes]]


def values(records: Records) -> list[bytes]:
    return [r.value for r in records if r.value is not None]


def positions(records: Records) -> set[tuple[int, int, bytes | None]]:
    return {(r.partition, r.offset, r.value) for r in records}


def has(value: bytes) -> Callable[[Records], bool]:
    """A ``read_topic`` condition: the record with this value has been read."""
    return lambda records: value in values(records)


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain (non-transactional) producer that waits for the write to be durable."""
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
async def transactional_producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def group_offsets(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    committed = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in committed.items()}


async def test_topic_factory_makes_fresh_topics_with_the_partitions_asked_for(
    kafka_topic_factory: TopicFactory, admin: AIOKafkaAdminClient
) -> None:
    first = await kafka_topic_factory(partitions=3)
    second = await kafka_topic_factory(partitions=1)

    assert first != second
    described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([first, second])}
    assert described == {first: 3, second: 1}


async def test_a_topic_nobody_created_is_an_error_not_a_new_topic(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    # auto.create.topics.enable=false: a mistyped topic name must fail, not quietly make a topic nobody reads.
    missing = f"missing-{uuid.uuid4().hex}"
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=1500)
    await client.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await client.send_and_wait(missing, b"lost")
    finally:
        await client.stop()

    assert missing not in await admin.list_topics()


async def test_read_committed_sees_committed_transactions_and_never_aborted_ones(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, transactional_producer: AIOKafkaProducer
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    tx = transactional_producer

    async with tx.transaction():
        await tx.send(topic, b"committed-1")
        await tx.send(topic, b"committed-2")
    await tx.begin_transaction()
    await tx.send(topic, b"aborted")
    await tx.abort_transaction()
    async with tx.transaction():
        await tx.send(topic, b"committed-3")

    # Reading up to the last committed record proves the aborted one was skipped, not merely not yet seen.
    committed = await read_topic(kafka_bootstrap, topic, until=has(b"committed-3"))
    assert values(committed) == [b"committed-1", b"committed-2", b"committed-3"]
    # The aborted record is in the log all the same: read_committed is what hides it.
    everything = await read_topic(kafka_bootstrap, topic, until=has(b"committed-3"), isolation_level="read_uncommitted")
    assert values(everything) == [b"committed-1", b"committed-2", b"aborted", b"committed-3"]


async def test_an_open_transaction_holds_read_committed_consumers_back_until_it_ends(
    kafka_bootstrap: str,
    kafka_topic_factory: TopicFactory,
    producer: AIOKafkaProducer,
    transactional_producer: AIOKafkaProducer,
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    tp = TopicPartition(topic, 0)
    await producer.send_and_wait(topic, b"before", partition=0)
    tx = transactional_producer

    await tx.begin_transaction()
    await (await tx.send(topic, b"pending", partition=0))  # written to the log, transaction still open
    await producer.send_and_wait(topic, b"after", partition=0)  # a plain write behind the open transaction

    async def end_offset(isolation_level: str) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level=isolation_level)
        await consumer.start()
        try:
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    # read_committed stops at the last stable offset: before the open transaction, and so before "after" too.
    assert await end_offset("read_uncommitted") == 3
    assert await end_offset("read_committed") == 1

    await tx.commit_transaction()

    # 3 records and the commit marker; the marker is written after commit returns, hence the polling.
    await reaches(lambda: end_offset("read_committed"), 4)
    records = await read_topic(kafka_bootstrap, topic, until=lambda r: len(r) == 3)
    assert values(records) == [b"before", b"pending", b"after"]


async def test_a_new_producer_with_the_same_transactional_id_fences_the_old_one(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    # aiokafka's send_offsets_to_transaction carries no group generation (no KIP-447), so the bridge relies
    # on this instead: one transactional id per input partition, and whoever takes the partition over
    # fences the previous owner and aborts its open transaction.
    topic = await kafka_topic_factory(partitions=1)
    transactional_id = f"tx-{uuid.uuid4().hex}"
    zombie = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    await zombie.start()
    successor = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    try:
        await zombie.begin_transaction()
        await (await zombie.send(topic, b"from-zombie"))

        await successor.start()  # InitProducerId: bumps the epoch and aborts the zombie's open transaction
        async with successor.transaction():
            await successor.send(topic, b"from-successor")

        with pytest.raises(ProducerFenced):
            await (await zombie.send(topic, b"zombie-again"))
        with pytest.raises(ProducerFenced):
            await zombie.commit_transaction()
    finally:
        await successor.stop()
        await zombie.stop()

    records = await read_topic(kafka_bootstrap, topic, until=has(b"from-successor"))
    assert values(records) == [b"from-successor"]
    everything = await read_topic(
        kafka_bootstrap, topic, until=has(b"from-successor"), isolation_level="read_uncommitted"
    )
    assert b"zombie-again" not in values(everything)


async def test_send_offsets_to_transaction_commits_the_group_offset_with_the_output_or_not_at_all(
    kafka_bootstrap: str,
    kafka_topic_factory: TopicFactory,
    admin: AIOKafkaAdminClient,
    producer: AIOKafkaProducer,
    transactional_producer: AIOKafkaProducer,
) -> None:
    source = await kafka_topic_factory(partitions=1)
    sink = await kafka_topic_factory(partitions=1)
    tp = TopicPartition(source, 0)
    group = f"group-{uuid.uuid4().hex}"
    for i in range(5):
        await producer.send_and_wait(source, f"in-{i}".encode(), partition=0)

    # A real group member consumes the input, as the bridge does; it never commits by itself.
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumed: Records = []
        deadline = time.monotonic() + 30
        while len(consumed) < 5:
            assert time.monotonic() < deadline, f"consumed only {consumed}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                consumed.extend(batch)
        next_offset = consumed[-1].offset + 1
        tx = transactional_producer

        # Aborted: neither the output nor the offset may land.
        await tx.begin_transaction()
        await tx.send(sink, b"out-aborted")
        await tx.send_offsets_to_transaction({tp: next_offset}, group)
        await tx.abort_transaction()
        # The coordinator takes the next transaction only once the abort's markers are all written, so once
        # this one is readable the abort is fully applied, to the offsets too.
        async with tx.transaction():
            await tx.send(sink, b"out-sentinel")
        sentinel = await read_topic(kafka_bootstrap, sink, until=has(b"out-sentinel"))
        assert values(sentinel) == [b"out-sentinel"]
        assert await group_offsets(admin, group) == {}

        # Committed: the output and the offset land together. The offset shows a moment after
        # commit_transaction returns (the markers are written asynchronously), and aiokafka's OffsetFetch (v3,
        # no require_stable) does not wait for it: a consumer joining in that window reads the old offset.
        async with tx.transaction():
            await tx.send(sink, b"out-committed")
            await tx.send_offsets_to_transaction({tp: next_offset}, group)
        await reaches(lambda: group_offsets(admin, group), {tp: next_offset})
        output = await read_topic(kafka_bootstrap, sink, until=has(b"out-committed"))
        assert values(output) == [b"out-sentinel", b"out-committed"]
    finally:
        await consumer.stop()

    # The group's next member resumes after what the transaction covered.
    await producer.send_and_wait(source, b"in-5", partition=0)
    successor = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await successor.start()
    try:
        first = await asyncio.wait_for(successor.getone(), timeout=30)
    finally:
        await successor.stop()
    assert (first.offset, first.value) == (next_offset, b"in-5")


@pytest.mark.slow
@pytest.mark.parametrize("crash", [False, True], ids=["clean-stop", "sigkill"])
async def test_a_broker_restart_keeps_records_transactions_and_group_offsets(
    crash: bool,
    kafka_broker: KafkaBroker | ExternalKafkaBroker,
    kafka_bootstrap: str,
    kafka_topic_factory: TopicFactory,
    admin: AIOKafkaAdminClient,
) -> None:
    if not kafka_broker.can_restart:
        kafka_broker.stop()  # skips, with the reason
    topic = await kafka_topic_factory(partitions=2)
    group = f"group-{uuid.uuid4().hex}"
    transactional_id = f"tx-{uuid.uuid4().hex}"

    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await plain.start()
    try:
        for i in range(10):
            await plain.send_and_wait(topic, f"plain-{i}".encode(), partition=i % 2)
    finally:
        await plain.stop()
    tx = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    await tx.start()
    try:
        async with tx.transaction():
            await tx.send(topic, b"tx-committed", partition=0)
            await tx.send_offsets_to_transaction({TopicPartition(topic, 0): 3}, group)
        await tx.begin_transaction()
        await tx.send(topic, b"tx-aborted", partition=1)
        await tx.abort_transaction()
    finally:
        await tx.stop()
    await reaches(lambda: group_offsets(admin, group), {TopicPartition(topic, 0): 3})
    # Everything above is acknowledged; the read below makes sure the commit marker is in place too.
    before = await read_topic(kafka_bootstrap, topic, until=lambda r: len(r) == 11)

    async with kafka_broker.outage(crash=crash):
        assert not kafka_broker.is_running()

    after = await read_topic(kafka_bootstrap, topic, until=lambda r: len(r) == 11)
    assert sorted(values(after)) == sorted(values(before))
    assert b"tx-aborted" not in values(after)
    assert positions(after) == positions(before)
    # A fresh admin client: the one from before the restart may still be reconnecting. The restarted coordinator
    # loads the group's offsets in the background: until it has, it answers "loading" or nothing, so wait for it.
    fresh_admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await fresh_admin.start()

    async def loaded_offsets() -> object:
        try:
            return await group_offsets(fresh_admin, group)
        except KafkaError as exc:
            return f"not yet: {exc!r}"

    try:
        await reaches(loaded_offsets, {TopicPartition(topic, 0): 3}, timeout=60)
    finally:
        await fresh_admin.close()

    # The same transactional id carries on after the restart.
    tx = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    await tx.start()
    try:
        async with tx.transaction():
            await tx.send(topic, b"tx-after-restart", partition=0)
    finally:
        await tx.stop()
    assert has(b"tx-after-restart")(await read_topic(kafka_bootstrap, topic, until=has(b"tx-after-restart")))
