"""What an optimizer needs: publish a batch of suggestions, then await their results by suggestion id.

    async with BridgeClient("127.0.0.1:9092") as bridge:
        ids = await bridge.submit("cnn-tpe", "cnn", [{"id": "t-1", "params": {"learning_rate": 0.01}}])
        results = await bridge.results("cnn-tpe", ids, timeout=600)

A refused suggestion (invalid params, a conflicting id, an unknown template) is answered too, with a failed
result whose `error` says why. To know what became of each suggestion of one message, refusals of the whole
message included, send it with `submit_message` and wait with `answers`:

        sent = await bridge.submit_message(message)
        for answer in (await bridge.service.answers(sent, timeout=5)).values():
            print(answer.suggestion_id, answer.run_id, answer.state, answer.reason)

The client reads the results and dead-letter topics from where they end when the client starts (read_committed),
so it sees every answer to what it submits afterwards, and nothing older.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import ValidationError

from bridge.client.answer_book import Answer, AnswerBook, Submission
from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.contract.dead_letters import DeadLetter
from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import RunResult
from bridge.contract.versions import DEADLETTER, RESULT, current
from bridge.kafka.connection import client_kwargs, with_broker_retry


class ResultsTimeout(TimeoutError):
    """Not every awaited result arrived in time; `received` holds those that did."""

    def __init__(self, missing: Sequence[str], received: Mapping[str, RunResult]) -> None:
        super().__init__(f"{len(missing)} result(s) did not arrive in time: {', '.join(list(missing)[:5])}")
        self.missing = list(missing)
        self.received = dict(received)


class BridgeClient:
    """A producer for suggestions and a read_committed reader of results, for one optimizer process."""

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        kafka: KafkaSettings | None = None,
        topics: TopicsSettings | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        base = kafka or KafkaSettings()
        self._kafka = base.model_copy(update={"bootstrap_servers": bootstrap_servers}) if bootstrap_servers else base
        self._topics = topics or TopicsSettings()
        self._connect_timeout_s = connect_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._seen: dict[tuple[str, str], RunResult] = {}

    async def __aenter__(self) -> BridgeClient:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # a half-started client closes what it opened (no "Unclosed AIOKafkaProducer")
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, and start reading results from the end of the results topic."""
        kwargs = client_kwargs(self._kafka)
        self._producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=True)
        await with_broker_retry(
            "connect",
            self._producer.start,
            give_up_after_s=self._connect_timeout_s,
            servers=self._kafka.bootstrap_servers,
        )
        self._consumer = AIOKafkaConsumer(
            **kwargs, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
        )
        await self._consumer.start()
        # The consumer's metadata only covers subscribed topics; an admin client describes any topic.
        admin = AIOKafkaAdminClient(**client_kwargs(self._kafka))
        await admin.start()
        try:
            partitions = await self._wait_partitions(admin, self._topics.results)
            # Dead letters tell of a submitted message refused as a whole; created with the results topic, by the
            # bridge. A principal that may not read them (deploy/kafka/ACLS.md's optimizer) still gets every
            # readable message's answers from the results topic; only a refusal of the whole message then stays
            # unseen ("pending").
            letters = await self._wait_partitions(admin, self._topics.dead_letters, optional=True)
        finally:
            await admin.close()
        tps = [TopicPartition(self._topics.results, p) for p in sorted(partitions)]
        tps += [TopicPartition(self._topics.dead_letters, p) for p in sorted(letters)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # pin the positions now, before anything is submitted
            await self._consumer.position(tp)

    async def _wait_partitions(self, admin: AIOKafkaAdminClient, topic: str, *, optional: bool = False) -> set[int]:
        """The partitions of `topic` once it exists; none when `optional` and this principal may not read it."""
        deadline = time.monotonic() + self._connect_timeout_s
        while True:
            (described,) = await admin.describe_topics([topic])
            partitions = {p["partition"] for p in described["partitions"] if p["leader"] >= 0}
            if described["error_code"] == 0 and partitions:
                return partitions
            if described["error_code"] == TopicAuthorizationFailedError.errno:
                if optional:
                    return set()
                raise PermissionError(f"not authorized to read topic {topic} (see deploy/kafka/ACLS.md)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} does not exist (is `bridge serve` running?)")
            await asyncio.sleep(0.2)  # the topic is being created by the bridge: poll its metadata

    async def stop(self) -> None:
        """Disconnect."""
        if self._producer is not None:
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()

    async def submit(
        self,
        study: str,
        template: str,
        suggestions: Sequence[Mapping[str, Any]],
        *,
        iteration: int | None = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Publish one suggestion message (each suggestion `{"id"?: ..., "params": {...}}`); returns the
        suggestion ids, the given ones or those the bridge derives."""
        message = SuggestionMessage.model_validate(
            {
                "study": study,
                "template": template,
                "iteration": iteration,
                "params": dict(params or {}),
                "suggestions": [dict(s) for s in suggestions],
                "metadata": dict(metadata or {}),
            }
        )
        await self.send(message)
        return message.suggestion_ids()

    async def send(self, message: SuggestionMessage) -> None:
        """Publish a suggestion message as it is, and wait until the broker has it."""
        await self.submit_message(message)

    async def submit_message(self, message: SuggestionMessage) -> Submission:
        """Publish a suggestion message as it is, wait until the broker has it, and say where it landed (what
        `answers` matches the bridge's answers to)."""
        assert self._producer is not None, "start() the client first"
        sent = await self._producer.send_and_wait(
            self._topics.suggestions, message.to_json().encode(), key=message.study.encode()
        )
        return Submission(
            study=message.study,
            template=message.template,
            suggestion_ids=message.suggestion_ids(),
            topic=sent.topic,
            partition=sent.partition,
            offset=sent.offset,
        )

    async def answers(self, submission: Submission, *, timeout: float) -> dict[str, Answer]:
        """What became of each suggestion of `submission`, waiting up to `timeout` seconds: until each has its
        answer, or the bridge has committed the message (what it caused is durable: the runs it took are
        `accepted`, the rest answered). Those without an answer by then are `pending`."""
        # Only what is read from here on: an answer kept from before would be an earlier submission's.
        book = AnswerBook(submission)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ends: dict[TopicPartition, int] | None = None  # where the answers committed with the message end
        admin = AIOKafkaAdminClient(**client_kwargs(self._kafka))
        await admin.start()
        try:
            while not book.complete and loop.time() < deadline:
                if ends is not None and await self._read_up_to(ends):
                    book.settle()
                    break
                for record in await self._poll(max(0.0, min(0.5, deadline - loop.time()))):
                    if record.topic == self._topics.results:
                        if (result := _result(record)) is not None:
                            self._note(result)
                            book.take_result(result)
                    elif (letter := _letter(record)) is not None and book.take_letter(letter):
                        ends = ends or await self._ends()
                if ends is None and await self._handled(admin, submission):
                    ends = await self._ends()
        finally:
            await admin.close()
        return book.answers()

    async def _handled(self, admin: AIOKafkaAdminClient, submission: Submission) -> bool:
        """The bridge's group committed the message's offset: it commits only with what the message caused."""
        tp = TopicPartition(submission.topic, submission.partition)
        try:
            committed = await admin.list_consumer_group_offsets(self._kafka.group_id, partitions=[tp])
        except KafkaError:
            return False  # not allowed to see the group (ACLs), or it is rebalancing: answers alone then
        at = committed.get(tp)
        return at is not None and at.offset > submission.offset

    async def _poll(self, timeout_s: float) -> list[ConsumerRecord[bytes, bytes]]:
        assert self._consumer is not None, "start() the client first"
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        return [record for records in batches.values() for record in records]

    async def _ends(self) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        # read_committed: the ends are the last stable offsets, past the transaction that committed the message.
        return dict(await self._consumer.end_offsets(list(self._consumer.assignment())))

    async def _read_up_to(self, ends: Mapping[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    def _note(self, result: RunResult) -> None:
        if result.study is not None and result.suggestion_id is not None:
            self._seen[(result.study, result.suggestion_id)] = result

    async def stream(self) -> AsyncIterator[RunResult]:
        """Every final result published from now on (refusals included: failed, with their reason)."""
        while True:
            for record in await self._poll(0.5):
                if record.topic == self._topics.results and (result := _result(record)) is not None:
                    yield result

    async def results(self, study: str, suggestion_ids: Sequence[str], *, timeout: float) -> dict[str, RunResult]:
        """Wait for the result of each suggestion id; raises `ResultsTimeout` after `timeout` seconds."""
        wanted = [i for i in suggestion_ids if (study, i) not in self._seen]
        if wanted:
            try:
                await asyncio.wait_for(self._collect(study, set(wanted)), timeout=timeout)
            except TimeoutError:
                got = {i: self._seen[(study, i)] for i in suggestion_ids if (study, i) in self._seen}
                raise ResultsTimeout([i for i in suggestion_ids if i not in got], got) from None
        return {i: self._seen.pop((study, i)) for i in suggestion_ids}

    async def _collect(self, study: str, wanted: set[str]) -> None:
        async for result in self.stream():
            self._note(result)
            if result.study == study and result.suggestion_id in wanted:
                wanted.discard(result.suggestion_id)
                if not wanted:
                    return


def _json(record: ConsumerRecord[bytes, bytes], schema: str) -> dict[str, Any] | None:
    try:
        data = json.loads(record.value)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == current(schema) else None


def _result(record: ConsumerRecord[bytes, bytes]) -> RunResult | None:
    data = _json(record, RESULT)
    try:
        return None if data is None else RunResult.model_validate(data)
    except ValidationError:
        return None  # not one this client can read: a newer minor field, or not the bridge's


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter | None:
    data = _json(record, DEADLETTER)
    try:
        return None if data is None else DeadLetter.model_validate(data)
    except ValidationError:
        return None
