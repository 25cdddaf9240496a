"""Everything a client read from the results and dead-letter topics, kept until a caller takes it, within a bound.

The client's one reader task puts each final result and dead letter it reads here, and every way of waiting
(`BridgeClient.results`, `answers`, `stream`, `next_result`, `Study`) takes from here: nothing read is lost
because another caller's wait happened to be the one that read it, whatever order callers wait in.

What is kept, and for how long (`keep`, 10,000 by default, bounds each part):
- A final result stays until it is taken (by `results`, `next_result` or a `Study`); once taken it stays readable
  for `answers` while there is room.
- Past `keep` results in all, the oldest go first: taken ones before any other, then untaken results this client
  does not expect (other studies, other optimizers on the same topic), and last those it expects (of suggestions
  it sent, or that a caller is waiting for): one of those goes only once `keep` of them lie here untaken.
- Dead letters: the last `keep`, by the position of the record each one refuses.
- Each listener (a `stream()`, an `answers()` wait) gets everything read while it listens, up to `keep` it has not
  taken yet.
A result dropped before it was taken (or before a listener took it) is counted in `dropped` and logged, so a
`ResultsTimeout` can say so: a client only loses an answer when it leaves more than `keep` of them untaken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

import structlog

from bridge.contract.dead_letters import DeadLetter
from bridge.contract.results import RunResult

log = structlog.get_logger(__name__)

Key = tuple[str, str]
"""A result's study and suggestion id."""
Position = tuple[str, int, int]
"""A record's topic, partition and offset."""
Item = RunResult | DeadLetter

KEEP = 10_000
_K = TypeVar("_K")
_V = TypeVar("_V")


class Listener:
    """What is read while it listens, in read order (see `Inbox.listen`)."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._items: deque[Item] = deque()

    def hear(self, item: Item) -> None:
        """Note one item read; past the inbox's bound, the oldest not taken yet goes."""
        if len(self._items) >= self._inbox.keep:
            self._inbox.note_dropped(self._items.popleft(), "a listener did not keep up")
        self._items.append(item)

    def drain(self) -> list[Item]:
        """What was read since the last drain."""
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self, timeout: float | None) -> list[Item]:
        """What was read since the last drain, waiting up to `timeout` seconds (None: no limit) when nothing was."""
        if not self._items:
            await self._inbox.wait(timeout)
        return self.drain()


class Inbox:
    """The results and dead letters read, for every caller of one client (see the module docstring)."""

    def __init__(self, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self.dropped = 0
        """Results dropped before anyone took them (past the bound)."""
        self._read = 0  # items read so far: the sequence number of the last one
        self._mine: OrderedDict[int, RunResult] = OrderedDict()  # expected and untaken, by sequence number
        self._others: OrderedDict[int, RunResult] = OrderedDict()  # not expected, untaken, by sequence number
        self._taken: OrderedDict[int, RunResult] = OrderedDict()  # taken, kept for `answers`, by sequence number
        self._untaken: dict[Key, deque[int]] = {}
        self._expected: OrderedDict[Key, None] = OrderedDict()
        self._letters: OrderedDict[Position, DeadLetter] = OrderedDict()
        self._marks: OrderedDict[Position, int] = OrderedDict()  # a sent record: what was read before it was sent
        self._listeners: set[Listener] = set()
        self._arrived = asyncio.Event()
        self._failure: BaseException | None = None

    # -- the reader's side

    def put(self, items: Iterable[Item]) -> None:
        """Keep what the reader read, in read order, and wake every waiter."""
        for item in items:
            self._read += 1
            if isinstance(item, RunResult):
                key = _key(item)
                (self._mine if key in self._expected else self._others)[self._read] = item
                self._untaken.setdefault(key, deque()).append(self._read)
            else:
                self._letters[(item.topic, item.partition, item.offset)] = item
                _trim(self._letters, self.keep)
            for listener in self._listeners:
                listener.hear(item)
        while len(self._mine) + len(self._others) + len(self._taken) > self.keep:
            self._drop_oldest()
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The reader stopped: every wait from now on raises `error`."""
        self._failure = error
        self._wake()

    # -- the callers' side

    def expect(self, keys: Iterable[Key]) -> None:
        """Results of `keys` are wanted (sent by this client, or waited for): keep them before others."""
        for key in keys:
            self._expected[key] = None
            self._expected.move_to_end(key)
        _trim(self._expected, self.keep)

    def mark(self) -> int:
        """How many items were read so far (for `sent`)."""
        return self._read

    def sent(self, position: Position, mark: int) -> None:
        """A record was sent to `position` when `mark` items had been read: answers to it come after those."""
        self._marks[position] = mark
        _trim(self._marks, self.keep)

    def results_since(self, position: Position) -> list[RunResult]:
        """The results kept that were read after the record at `position` was sent (all kept results when this
        client did not send it, or sent it too long ago to remember), taken or not, in read order."""
        mark = self._marks.get(position, 0)
        pools = (self._mine, self._others, self._taken)
        found = [(seq, r) for pool in pools for seq, r in pool.items() if seq > mark]
        return [r for _, r in sorted(found, key=lambda pair: pair[0])]

    def letter_at(self, position: Position) -> DeadLetter | None:
        """The dead letter of the record at `position`, when one was read."""
        return self._letters.get(position)

    def peek(self, key: Key) -> RunResult | None:
        """The first result of `key` not taken yet."""
        seqs = self._untaken.get(key)
        return self._find(seqs[0]) if seqs else None

    def take(self, key: Key) -> RunResult | None:
        """Take the first result of `key` not taken yet."""
        seqs = self._untaken.get(key)
        if not seqs:
            return None
        seq = seqs.popleft()
        if not seqs:
            del self._untaken[key]
        self._expected.pop(key, None)
        result = self._mine.pop(seq) if seq in self._mine else self._others.pop(seq)
        self._taken[seq] = result  # still readable by `answers`, the first to go
        return result

    def take_first(self, keys: Iterable[Key]) -> RunResult | None:
        """Take the result read first among the untaken results of `keys`."""
        firsts = [(seqs[0], key) for key in keys if (seqs := self._untaken.get(key))]
        return self.take(min(firsts)[1]) if firsts else None

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """A listener that hears everything read until the block ends."""
        listener = Listener(self)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def wait(self, timeout: float | None) -> None:
        """Until something more is read, or `timeout` seconds (None: no limit); raises the reader's failure."""
        self.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout)
        self.check()

    def check(self) -> None:
        """Raise the reader's failure, if it stopped."""
        if self._failure is not None:
            raise self._failure

    def note_dropped(self, item: Item, why: str) -> None:
        """Count (and log, the first time) a result dropped before anyone took it."""
        if not isinstance(item, RunResult):
            return
        if not self.dropped:
            log.warning("result_dropped", study=item.study, suggestion_id=item.suggestion_id, why=why, keep=self.keep)
        self.dropped += 1

    # -- inside

    def _wake(self) -> None:
        self._arrived.set()  # wakes every waiter already waiting; later ones wait for the next read
        self._arrived.clear()

    def _find(self, seq: int) -> RunResult:
        return self._mine[seq] if seq in self._mine else self._others[seq]

    def _drop_oldest(self) -> None:
        seq, result = (self._taken or self._others or self._mine).popitem(last=False)
        key = _key(result)
        seqs = self._untaken.get(key)
        if seqs and seq in seqs:  # not taken yet: an answer lost
            seqs.remove(seq)
            if not seqs:
                del self._untaken[key]
            self.note_dropped(result, f"more than {self.keep} results kept")


def _key(result: RunResult) -> Key:
    return (result.study or "", result.suggestion_id or "")


def _trim(kept: OrderedDict[_K, _V], keep: int) -> None:
    while len(kept) > keep:
        kept.popitem(last=False)
