"""The dash's one consumer: the results, operations and dead-letter topics, read_committed, from the start of what
they retain, decoded with the contract's decoders and folded into the board as they come.

It also tells how far it has read (the page shows "reading the topics" until the ends they had at start are
reached: that is when the dash is ready) and, every few seconds, how far the bridge's consumer group is behind on
the suggestions topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from bridge.config.settings import BridgeSettings
from bridge.contract.decoders import Unreadable, read_dead_letter, read_operation, read_result
from bridge.dash.board import Board
from bridge.errors import BridgeError, Retryable
from bridge.kafka.lookups import Lookups
from bridge.kafka.offsets import Partition
from bridge.kafka.reader import Record, TopicReader

log = structlog.get_logger(__name__)

PAGE = 5000  # records handed to the board per read: the loop yields to the web server between pages
LAG_EVERY_S = 5.0


@dataclass
class FeedStatus:
    """How far the dash has read, and the bridge group's lag per suggestions partition."""

    read: int = 0
    total: int = 0  # records the topics held at start (their end offsets summed: about, after retention)
    caught_up: bool = False
    behind: int = 0
    group_lag: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # topics that do not exist yet (no bridge served yet)

    def as_dict(self) -> dict[str, Any]:
        """For the pages and `/readyz`."""
        return {
            "read": self.read,
            "total": self.total,
            "caught_up": self.caught_up,
            "behind": self.behind,
            "group_lag": dict(self.group_lag),
            "missing": list(self.missing),
        }


class Feed:
    """Reads the topics into `board` until `stop()`; `changed` is set each time the board moved."""

    def __init__(self, settings: BridgeSettings, board: Board) -> None:
        self._settings = settings
        self._board = board
        topics = settings.topics
        self._topics = (topics.results, topics.operations, topics.dead_letters)
        self._reader: TopicReader | None = None  # made once the topics exist: following a missing topic fails
        self._connect_timeout_s = 30.0
        self._ends: dict[Partition, int] = {}
        self.status = FeedStatus()
        self.changed = asyncio.Event()
        self._stopping = asyncio.Event()

    async def start(self, *, connect_timeout_s: float) -> None:
        """Check that the broker answers, retrying for `connect_timeout_s`; then raises the bridge's `Retryable` (at
        once `BrokerRefused`, when the broker refuses this principal)."""
        self._connect_timeout_s = connect_timeout_s
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                await self._missing_topics()
                return
            except Retryable as exc:
                if time.monotonic() > deadline:
                    servers = self._settings.kafka.bootstrap_servers
                    raise Retryable(
                        f"cannot reach Kafka at {servers} to start the dash after {connect_timeout_s:g} s: {exc}"
                    ) from exc
                await asyncio.sleep(0.5)  # a broker starting up: try again shortly, until the deadline

    async def stop(self) -> None:
        """Disconnect."""
        self._stopping.set()
        if self._reader is not None:
            await self._reader.stop()

    async def _missing_topics(self) -> list[str]:
        async with Lookups(self._settings.kafka) as lookups:
            return [t.topic for t in await lookups.topics(*self._topics) if not t.exists]

    async def _follow(self) -> TopicReader | None:
        """Wait for the topics (a dash may start before any bridge made them), then follow them from their start,
        noting where they end now: reading up to there is what makes the dash ready. None when stopped first."""
        while missing := await self._missing_topics():
            self.status.missing = missing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=2.0)  # look again every 2 s until stopped
            if self._stopping.is_set():
                return None
        self.status.missing = []
        reader = self._reader = TopicReader(self._settings.kafka, follows=self._topics, from_beginning=True)
        await reader.start("follow the topics for the dash", give_up_after_s=self._connect_timeout_s)
        async with Lookups(self._settings.kafka) as lookups:
            partitions = await lookups.partitions(*self._topics)
        self._ends = {p: end for p, end in (await reader.end_offsets(partitions)).items() if end > 0}
        self.status.total = sum(self._ends.values())
        self.status.caught_up = not self._ends
        self.status.behind = self.status.total
        self._notify()
        return reader

    async def run(self) -> None:
        """Read and fold records until stopped."""
        reader = await self._follow()
        if reader is None:
            return
        lag = asyncio.create_task(self._follow_group_lag(reader))
        try:
            while not self._stopping.is_set():
                try:
                    records = await reader.read(0.5, at_most=PAGE)
                except Retryable as exc:  # the broker away for a while: the pages stay up with what they had
                    log.warning("dash_read_retry", error=str(exc))
                    await asyncio.sleep(1.0)  # a backoff before reading again, not a synchronisation
                    continue
                for record in records:
                    self._take(record)
                self.status.read += len(records)
                if not self.status.caught_up:
                    await self._check_caught_up(reader)
                if records:
                    self._notify()
                await asyncio.sleep(0)  # a page at a time: the pages stay served while a backlog is read
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def _take(self, record: Record) -> None:
        topics = self._settings.topics
        board = self._board
        try:
            if record.topic == topics.results:
                result = read_result(record.value)
                if not isinstance(result, Unreadable):
                    board.take_result(result.message, result.data)
                    return
            elif record.topic == topics.operations:
                event = read_operation(record.value)
                if not isinstance(event, Unreadable):
                    board.take_operation(event.message, partition=record.partition)
                    return
            else:
                letter = read_dead_letter(record.value)
                if not isinstance(letter, Unreadable):
                    board.take_dead_letter(letter.message)
                    return
        except Exception:  # a record no decoder refused yet the board could not take: shown as a count, logged
            log.exception("dash_record_not_taken", topic=record.topic, partition=record.partition, offset=record.offset)
        board.take_unreadable(record.topic)

    async def _check_caught_up(self, reader: TopicReader) -> None:
        assigned = reader.assignment()
        if not set(self._ends) <= assigned:
            return
        behind = await reader.behind(self._ends)
        self.status.behind = sum(self._ends[p] for p in behind)  # an upper bound while reading: cheap to tell
        if not behind:
            self.status.caught_up = True
            self.status.behind = 0
            log.info("dash_caught_up", records=self.status.read)

    async def _follow_group_lag(self, reader: TopicReader) -> None:
        """The bridge group's lag on each suggestions partition, every `LAG_EVERY_S`; a failed look-up leaves the
        last figures (the page is a view: it does not fail for want of one number)."""
        topic = self._settings.topics.suggestions
        group = self._settings.kafka.group_id
        while not self._stopping.is_set():
            try:
                async with Lookups(self._settings.kafka) as lookups:
                    partitions = await lookups.partitions(topic)
                    ends = await reader.end_offsets(partitions)
                    lag: dict[str, int] = {}
                    for part, end in sorted(ends.items(), key=lambda pe: pe[0].partition):
                        committed = await lookups.committed(group, part)
                        lag[f"{part.topic}[{part.partition}]"] = end - (committed or 0)
                self.status.group_lag = lag
            except BridgeError as exc:
                log.info("dash_group_lag_unknown", error=str(exc))
            await asyncio.sleep(LAG_EVERY_S)  # a period, not a synchronisation: the figure is refreshed this often
