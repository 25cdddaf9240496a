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
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from bridge.client.answer_book import Answer, AnswerBook, Submission
from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.contract.dead_letters import DeadLetter
from bridge.contract.decoders import Decoded, Unreadable, read_dead_letter, read_result
from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import RunResult
from bridge.errors import BrokerRefused, Retryable
from bridge.kafka.lookups import Lookups
from bridge.kafka.offsets import Partition
from bridge.kafka.reader import Record, TopicReader
from bridge.kafka.writer import TopicWriter

log = structlog.get_logger(__name__)
_M = TypeVar("_M")


class ResultsTimeout(TimeoutError):
    """Not every awaited result arrived in time; `received` holds those that did."""

    def __init__(
        self, missing: Sequence[str], received: Mapping[str, RunResult], unreadable: Mapping[str, int] | None = None
    ) -> None:
        text = f"{len(missing)} result(s) did not arrive in time: {', '.join(list(missing)[:5])}"
        if unreadable:  # maybe they came, in a form this client cannot read: say so
            text += "; records this client could not read meanwhile: " + "; ".join(
                f"{n} x {why}" for why, n in unreadable.items()
            )
        super().__init__(text)
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
        self._producer: TopicWriter | None = None
        self._consumer: TopicReader | None = None
        self._seen: dict[tuple[str, str], RunResult] = {}
        self.unreadable: Counter[str] = Counter()
        """Records of the results and dead-letter topics this client skipped, by why it could not read them
        (a newer bridge's schema version, or not a message at all)."""

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
        self._producer = TopicWriter(self._kafka)
        await self._producer.start("connect", give_up_after_s=self._connect_timeout_s)
        self._consumer = TopicReader(self._kafka)
        await self._consumer.start("connect", give_up_after_s=self._connect_timeout_s)
        # The consumer's metadata only covers what it reads; the admin API describes any topic.
        async with Lookups(self._kafka) as lookups:
            partitions = await self._wait_partitions(lookups, self._topics.results)
            # Dead letters tell of a submitted message refused as a whole; created with the results topic, by the
            # bridge. A principal that may not read them (deploy/kafka/ACLS.md's optimizer) still gets every
            # readable message's answers from the results topic; only a refusal of the whole message then stays
            # unseen ("pending").
            letters = await self._wait_partitions(lookups, self._topics.dead_letters, optional=True)
        parts = [Partition(self._topics.results, p) for p in sorted(partitions)]
        parts += [Partition(self._topics.dead_letters, p) for p in sorted(letters)]
        await self._consumer.assign(parts, at="end")  # the positions are pinned now, before anything is submitted

    async def _wait_partitions(self, lookups: Lookups, topic: str, *, optional: bool = False) -> frozenset[int]:
        """The partitions of `topic` once it exists; none when `optional` and this principal may not read it."""
        deadline = time.monotonic() + self._connect_timeout_s
        while True:
            (described,) = await lookups.topics(topic)
            if described.exists and described.led:
                return described.led
            if not described.authorized:
                if optional:
                    return frozenset()
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
        sent = await self._producer.send(
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
        ends: dict[Partition, int] | None = None  # where the answers committed with the message end
        async with Lookups(self._kafka) as lookups:
            while not book.complete and loop.time() < deadline:
                if ends is not None and await self._read_up_to(ends):
                    book.settle()
                    break
                for record in await self._poll(max(0.0, min(0.5, deadline - loop.time()))):
                    if record.topic == self._topics.results:
                        if (result := self._result(record)) is not None:
                            self._note(result)
                            book.take_result(result)
                    elif (letter := self._letter(record)) is not None and book.take_letter(letter):
                        ends = ends or await self._ends()
                if ends is None and await self._handled(lookups, submission):
                    ends = await self._ends()
        return book.answers()

    async def _handled(self, lookups: Lookups, submission: Submission) -> bool:
        """The bridge's group committed the message's offset: it commits only with what the message caused."""
        try:
            at = await lookups.committed(self._kafka.group_id, Partition(submission.topic, submission.partition))
        except (BrokerRefused, Retryable):
            return False  # not allowed to see the group (ACLs), or it is rebalancing: answers alone then
        return at is not None and at > submission.offset

    async def _poll(self, timeout_s: float) -> list[Record]:
        assert self._consumer is not None, "start() the client first"
        return await self._consumer.read(timeout_s)

    async def _ends(self) -> dict[Partition, int]:
        assert self._consumer is not None
        # read_committed: the ends are the last stable offsets, past the transaction that committed the message.
        return await self._consumer.end_offsets(self._consumer.assignment())

    async def _read_up_to(self, ends: Mapping[Partition, int]) -> bool:
        assert self._consumer is not None
        return not await self._consumer.behind(ends)

    def _result(self, record: Record) -> RunResult | None:
        """The final result a results-topic record holds; None for a progress event or a record not readable."""
        read = self._read(read_result(record.value), record)
        return read.message if read is not None and isinstance(read.message, RunResult) else None

    def _letter(self, record: Record) -> DeadLetter | None:
        read = self._read(read_dead_letter(record.value), record)
        return None if read is None else read.message

    def _read(self, read: Decoded[_M] | Unreadable, record: Record) -> Decoded[_M] | None:
        """`read`, or None after counting (and logging, the first time for each reason) a record not readable."""
        if not isinstance(read, Unreadable):
            return read
        why = str(read)
        if not self.unreadable[why]:
            log.warning(
                "record_unreadable", topic=record.topic, partition=record.partition, offset=record.offset, why=why
            )
        self.unreadable[why] += 1
        return None

    def _note(self, result: RunResult) -> None:
        if result.study is not None and result.suggestion_id is not None:
            self._seen[(result.study, result.suggestion_id)] = result

    async def stream(self) -> AsyncIterator[RunResult]:
        """Every final result published from now on (refusals included: failed, with their reason)."""
        while True:
            for record in await self._poll(0.5):
                if record.topic == self._topics.results and (result := self._result(record)) is not None:
                    yield result

    async def results(self, study: str, suggestion_ids: Sequence[str], *, timeout: float) -> dict[str, RunResult]:
        """Wait for the result of each suggestion id; raises `ResultsTimeout` after `timeout` seconds."""
        wanted = [i for i in suggestion_ids if (study, i) not in self._seen]
        if wanted:
            try:
                await asyncio.wait_for(self._collect(study, set(wanted)), timeout=timeout)
            except TimeoutError:
                got = {i: self._seen[(study, i)] for i in suggestion_ids if (study, i) in self._seen}
                missing = [i for i in suggestion_ids if i not in got]
                raise ResultsTimeout(missing, got, self.unreadable) from None
        return {i: self._seen.pop((study, i)) for i in suggestion_ids}

    async def _collect(self, study: str, wanted: set[str]) -> None:
        async for result in self.stream():
            self._note(result)
            if result.study == study and result.suggestion_id in wanted:
                wanted.discard(result.suggestion_id)
                if not wanted:
                    return
