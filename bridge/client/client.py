"""What an optimizer needs: publish a batch of suggestions, then await their results by suggestion id.

    async with BridgeClient("127.0.0.1:9092") as bridge:
        ids = await bridge.submit("cnn-tpe", "cnn", [{"id": "t-1", "params": {"learning_rate": 0.01}}])
        results = await bridge.results("cnn-tpe", ids, timeout=600)

A refused suggestion (invalid params, a conflicting id, an unknown template) is answered too, with a failed
result whose `error` says why. To know what became of each suggestion of one message, refusals of the whole
message included, send it with `submit_message` and wait with `answers`:

        sent = await bridge.submit_message(message)
        for answer in (await bridge.answers(sent, timeout=5)).values():
            print(answer.suggestion_id, answer.run_id, answer.state, answer.reason)

The client reads the results and dead-letter topics from where they end when it starts (read_committed), so it
sees every answer to what it submits afterwards, and nothing older. One reader task reads them into one inbox
(inbox.py), and every way of waiting takes from it: `results`, `next_result`, `answers`, `stream` and `Study`
agree, in any order and from any number of tasks, and nothing one of them read is lost to another (within the
inbox's documented bound, `keep_results`).

A client belongs to the event loop it started on. From another thread, run its coroutines on that loop:

        answers = asyncio.run_coroutine_threadsafe(bridge.results("s", ids, timeout=60), bridge.loop).result()

Awaiting them on another loop raises `WrongLoop` at once.

What the bridge builds is announced too: `watch_operations`, started before sending, hands the operation the
bridge built for a study and template (its `created` event on the operations topic, operations.py), which holds
the template's declared inputs.

Intermediate metrics are heard, not kept: `listen_progress` hands each `bridge.progress/v1` event of the named
suggestions read while it listens to a callback (progress.py). `stop_run` asks the bridge to stop a run through
the control topic; the run's `stopped` result then comes as its answer, like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from bridge.client.answer_book import Answer, AnswerBook, Submission
from bridge.client.inbox import KEEP, Inbox, Item, Position
from bridge.client.operations import OperationWatch
from bridge.client.progress import Hearer, ProgressListeners
from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.contract.dead_letters import DeadLetter
from bridge.contract.decoders import Decoded, Unreadable, read_dead_letter, read_result
from bridge.contract.messages import ControlMessage, SuggestionMessage
from bridge.contract.results import ProgressEvent, RunResult
from bridge.errors import BrokerRefused, Retryable
from bridge.kafka.lookups import Lookups
from bridge.kafka.offsets import Partition
from bridge.kafka.reader import Record, TopicReader
from bridge.kafka.writer import TopicWriter

log = structlog.get_logger(__name__)
_M = TypeVar("_M")
_HANDLED_EVERY_S = 0.25  # how often `answers` asks the broker whether the bridge committed the message


class ResultsTimeout(TimeoutError):
    """Not every awaited result arrived in time; `received` holds those that did."""

    def __init__(
        self,
        missing: Sequence[str],
        received: Mapping[str, RunResult],
        unreadable: Mapping[str, int] | None = None,
        dropped: int = 0,
    ) -> None:
        text = f"{len(missing)} result(s) did not arrive in time: {', '.join(list(missing)[:5])}"
        if unreadable:  # maybe they came, in a form this client cannot read: say so
            text += "; records this client could not read meanwhile: " + "; ".join(
                f"{n} x {why}" for why, n in unreadable.items()
            )
        if dropped:  # maybe they came, and were dropped before anyone took them
            text += f"; {dropped} result(s) were dropped untaken, past the client's keep_results"
        super().__init__(text)
        self.missing = list(missing)
        self.received = dict(received)


class WrongLoop(RuntimeError):
    """A client's coroutine was awaited on another event loop than the one the client started on."""


class BridgeClient:
    """A producer for suggestions and a read_committed reader of results, for one optimizer process."""

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        kafka: KafkaSettings | None = None,
        topics: TopicsSettings | None = None,
        connect_timeout_s: float = 30.0,
        keep_results: int = KEEP,
    ) -> None:
        """`keep_results` bounds what the client keeps of what it read and nobody took yet (see inbox.py)."""
        base = kafka or KafkaSettings()
        self._kafka = base.model_copy(update={"bootstrap_servers": bootstrap_servers}) if bootstrap_servers else base
        self._topics = topics or TopicsSettings()
        self._connect_timeout_s = connect_timeout_s
        self._keep = keep_results
        self._producer: TopicWriter | None = None
        self._consumer: TopicReader | None = None
        self._inbox: Inbox | None = None
        self._reader: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._progress = ProgressListeners()
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

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the client started on, where its coroutines run."""
        if self._loop is None:
            raise RuntimeError("start() the client first")
        return self._loop

    @property
    def dropped(self) -> int:
        """Results read and dropped before anyone took them (more than `keep_results` left untaken)."""
        return 0 if self._inbox is None else self._inbox.dropped

    async def start(self) -> None:
        """Connect, and start reading results from the end of the results topic."""
        self._loop = asyncio.get_running_loop()
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
        self._inbox = Inbox(self._keep)
        self._reader = asyncio.create_task(self._read(self._consumer, self._inbox), name="bridge-client-reader")

    async def _wait_partitions(self, lookups: Lookups, topic: str, *, optional: bool = False) -> frozenset[int]:
        """The partitions of `topic` once it exists; none when `optional` and this principal may not read it."""
        deadline = time.monotonic() + self._connect_timeout_s
        while True:
            (described,) = await lookups.topics(topic)
            if described.exists and described.partitions and described.led == described.partitions:
                return described.led  # every partition: one without a leader yet would never be read
            if not described.authorized:
                if optional:
                    return frozenset()
                raise PermissionError(f"not authorized to read topic {topic} (see deploy/kafka/ACLS.md)")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"topic {topic} does not exist, or not every partition has a leader (is `bridge serve` running?)"
                )
            await asyncio.sleep(0.2)  # the topic is being created by the bridge: poll its metadata

    async def stop(self) -> None:
        """Disconnect; waits still going in other tasks raise `RuntimeError`."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._inbox is not None:
            self._inbox.fail(RuntimeError("the BridgeClient was stopped"))
        if self._producer is not None:
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self, consumer: TopicReader, inbox: Inbox) -> None:
        """The one reader: every record of the results and dead-letter topics, into the inbox."""
        try:
            while True:
                records = await consumer.read(1.0)
                # No await from the read to the put: once the consumer's position is past a record, the inbox has it.
                items = [item for record in records if (item := self._decode(record)) is not None]
                inbox.put(item for item in items if not isinstance(item, ProgressEvent))
                for item in items:
                    if isinstance(item, ProgressEvent):
                        self._progress.put(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every wait raises it, rather than waiting out its timeout
            log.warning("client_reader_failed", error=str(exc))
            inbox.fail(exc)

    def _here(self) -> Inbox:
        """The inbox, after checking this runs on the client's own loop."""
        if self._inbox is None or self._loop is None:
            raise RuntimeError("start() the client first")
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoop(
                "this BridgeClient belongs to the event loop it started on; from another thread run its coroutines "
                "there: asyncio.run_coroutine_threadsafe(client.results(...), client.loop).result()"
            )
        return self._inbox

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
        inbox = self._here()
        assert self._producer is not None
        ids = message.suggestion_ids()
        inbox.expect((message.study, sid) for sid in ids)
        mark = inbox.mark()  # before sending: every answer to it is read after this
        sent = await self._producer.send(
            self._topics.suggestions, message.to_json().encode(), key=message.study.encode()
        )
        inbox.sent((sent.topic, sent.partition, sent.offset), mark)
        return Submission(
            study=message.study,
            template=message.template,
            suggestion_ids=ids,
            topic=sent.topic,
            partition=sent.partition,
            offset=sent.offset,
        )

    async def stop_run(
        self,
        study: str,
        *,
        suggestion_id: str | None = None,
        run_id: str | None = None,
        reason: str | None = None,
        token: str | None = None,
    ) -> Position:
        """Ask the bridge to stop a run (named by suggestion id or run id) through the control topic, as
        `bridge stop` does; returns where the control message landed. Its answer is the run's final result (for a
        run stopped, `stopped`), read like any other; a refused stop (a wrong `token`, another study) is a dead
        letter of that position (`refusal`)."""
        inbox = self._here()
        assert self._producer is not None
        message = ControlMessage.model_validate(
            {
                "action": "stop_run",
                "study": study,
                "suggestion_id": suggestion_id,
                "run_id": run_id,
                "reason": reason,
                "token": token,
            }
        )
        mark = inbox.mark()
        sent = await self._producer.send(self._topics.control, message.to_json().encode(), key=study.encode())
        position: Position = (sent.topic, sent.partition, sent.offset)
        inbox.sent(position, mark)
        return position

    def refusal(self, position: Position) -> DeadLetter | None:
        """The dead letter refusing the record this client sent to `position`, when one was read."""
        return self._here().letter_at(position)

    @contextlib.contextmanager
    def listen_progress(self, study: str, suggestion_ids: Iterable[str], hear: Hearer) -> Iterator[None]:
        """`hear` gets each progress event of `suggestion_ids` in `study` read until the block ends, on the
        client's loop (it must not block). Listen before sending: events read before are not kept."""
        self._here()
        with self._progress.listen(study, suggestion_ids, hear):
            yield

    @contextlib.asynccontextmanager
    async def watch_operations(self) -> AsyncIterator[OperationWatch | None]:
        """The operations topic, read from where it ends now until the block ends: start it before sending, and
        `created` sees the operation the bridge builds for what was sent (its template's inputs). None when this
        principal may not read that topic (deploy/kafka/ACLS.md's optimizer), or it cannot be read now."""
        self._here()
        reader = await self._operations_reader()
        try:
            yield None if reader is None else OperationWatch(reader)
        finally:
            if reader is not None:
                await reader.stop()

    async def _operations_reader(self) -> TopicReader | None:
        """A reader of every partition of the operations topic from its end, or None when it cannot read it."""
        topic = self._topics.operations
        try:
            async with Lookups(self._kafka) as lookups:
                (described,) = await lookups.topics(topic)
        except (BrokerRefused, Retryable) as exc:
            log.debug("operations_not_watched", topic=topic, error=str(exc))
            return None
        if not (described.authorized and described.exists and described.partitions):
            return None
        if described.led != described.partitions:
            return None  # a partition without a leader could not be read from its end
        reader = TopicReader(self._kafka)
        try:
            await reader.start("connect", give_up_after_s=self._connect_timeout_s)
            # The positions are pinned on return: every event published afterwards is read.
            await reader.assign([Partition(topic, p) for p in sorted(described.partitions)], at="end")
        except (BrokerRefused, Retryable) as exc:
            await reader.stop()
            log.debug("operations_not_watched", topic=topic, error=str(exc))
            return None
        except BaseException:
            await reader.stop()
            raise
        return reader

    async def answers(self, submission: Submission, *, timeout: float) -> dict[str, Answer]:
        """What became of each suggestion of `submission`, waiting up to `timeout` seconds: until each has its
        answer, or the bridge has committed the message (what it caused is durable: the runs it took are
        `accepted`, the rest answered). Those without an answer by then are `pending`. Answers read before the
        call count (those read since this client sent it); none is taken from `results` or `Study`."""
        inbox = self._here()
        book = AnswerBook(submission)
        position: Position = (submission.topic, submission.partition, submission.offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ends: dict[Partition, int] | None = None  # where the answers committed with the message end
        asked_at = -_HANDLED_EVERY_S
        with inbox.listen() as listener:
            # No await from listening to the look back: each answer is heard or found, none missed.
            self._note(book, inbox.results_since(position))
            letter = inbox.letter_at(position)
            if letter is not None:
                book.take_letter(letter)
            async with Lookups(self._kafka) as lookups:
                while not book.complete and loop.time() < deadline:
                    if ends is None and book.letter is not None:
                        ends = await self._ends()
                    if ends is None and loop.time() - asked_at >= _HANDLED_EVERY_S:
                        asked_at = loop.time()
                        if await self._handled(lookups, submission):
                            ends = await self._ends()
                    if ends is not None and await self._read_up_to(ends):
                        self._note(book, listener.drain())
                        book.settle()
                        break
                    self._note(book, await listener.wait(max(0.0, min(0.5, deadline - loop.time()))))
        return book.answers()

    @staticmethod
    def _note(book: AnswerBook, items: Iterable[Item]) -> None:
        for item in items:
            if isinstance(item, RunResult):
                book.take_result(item)
            else:
                book.take_letter(item)

    async def _handled(self, lookups: Lookups, submission: Submission) -> bool:
        """The bridge's group committed the message's offset: it commits only with what the message caused."""
        try:
            at = await lookups.committed(self._kafka.group_id, Partition(submission.topic, submission.partition))
        except (BrokerRefused, Retryable):
            return False  # not allowed to see the group (ACLs), or it is rebalancing: answers alone then
        return at is not None and at > submission.offset

    async def _ends(self) -> dict[Partition, int]:
        assert self._consumer is not None
        # read_committed: the ends are the last stable offsets, past the transaction that committed the message.
        return await self._consumer.end_offsets(self._consumer.assignment())

    async def _read_up_to(self, ends: Mapping[Partition, int]) -> bool:
        assert self._consumer is not None
        return not await self._consumer.behind(ends)

    def _decode(self, record: Record) -> RunResult | ProgressEvent | DeadLetter | None:
        """The final result, progress event or dead letter a record holds; None for a record not readable."""
        if record.topic == self._topics.results:
            result = self._read_one(read_result(record.value), record)
            return None if result is None else result.message
        letter = self._read_one(read_dead_letter(record.value), record)
        return None if letter is None else letter.message

    def _read_one(self, read: Decoded[_M] | Unreadable, record: Record) -> Decoded[_M] | None:
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

    async def stream(self) -> AsyncIterator[RunResult]:
        """Every final result read from the first iteration on (refusals included: failed, with their reason),
        whoever else takes them."""
        inbox = self._here()
        with inbox.listen() as listener:
            while True:
                for item in await listener.wait(None):
                    if isinstance(item, RunResult):
                        yield item

    async def results(self, study: str, suggestion_ids: Sequence[str], *, timeout: float) -> dict[str, RunResult]:
        """Take the result of each suggestion id, read before the call or after; raises `ResultsTimeout` after
        `timeout` seconds (the results that did come stay for a later call)."""
        inbox = self._here()
        ids = list(dict.fromkeys(suggestion_ids))
        inbox.expect((study, i) for i in ids)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = {i: r for i in ids if (r := inbox.peek((study, i))) is not None}
            if len(got) == len(ids):
                return {i: self._take(inbox, study, i) for i in ids}
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                missing = [i for i in ids if i not in got]
                raise ResultsTimeout(missing, got, self.unreadable, inbox.dropped)
            await inbox.wait(remaining)

    async def next_result(self, study: str, suggestion_ids: Iterable[str], *, timeout: float | None) -> RunResult:
        """Take the first result read of any of `suggestion_ids` (as they complete); raises `ResultsTimeout`
        after `timeout` seconds (None: no limit)."""
        inbox = self._here()
        keys = [(study, i) for i in dict.fromkeys(suggestion_ids)]
        inbox.expect(keys)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while (result := inbox.take_first(keys)) is None:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise ResultsTimeout(sorted(i for _, i in keys), {}, self.unreadable, inbox.dropped)
            await inbox.wait(remaining)
        return result

    @staticmethod
    def _take(inbox: Inbox, study: str, suggestion_id: str) -> RunResult:
        result = inbox.take((study, suggestion_id))
        assert result is not None, "peeked a moment ago, with no await since"
        return result
