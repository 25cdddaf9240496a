"""Which runs may start their first attempt before any record of that start is committed (`lease.py`).

A run starts early only with a *grant*: a `dispatched` ledger record with attempt 0, "attempt 1 may start
without another commit". The grants of a partition form a window, at most `GRANT_WINDOW` runs granted and not yet
started, filled in the order runs were received:

- a run received while the window has room gets its grant instead of a `received` record (the grant holds all a
  `received` record does), in the transaction of its suggestion's offset (both or neither commit); it may start
  as soon as it gets a slot, its message being below the partition's committed claim (else its message could be
  lost with the grant and read again unclaimed);
- a run received while the window is full waits; its grant is queued when room comes (one of the window's runs
  started or went), so it is usually committed before the run gets a slot; if not, the start waits for it.

A partition taken from an owner that died holding it counts attempt 1 as made for its granted runs only: a run
merely `received` never started. So a crash costs at most `GRANT_WINDOW` runs per partition an attempt number
(plus the runs of the few records claimed ahead, `lease.CLAIM_AHEAD`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bridge.kafka.base import Outgoing
from bridge.kafka.offsets import Partition
from bridge.service.ledger.lease import Claims, Queue
from bridge.service.runs import RunItem

# Runs per partition granted ahead of their slot: enough that a burst of instant runs mostly finds its grants
# committed (serve_throughput.py at 4 slots: 190 results/s with 2, 326 with 4, no more with 8), few enough that a
# crash renumbers few runs that never ran.
GRANT_WINDOW = 4


@dataclass(frozen=True)
class _Grant:
    item: RunItem
    committed: asyncio.Future[None]
    with_message: bool  # in the transaction of the run's `received` record and its suggestion's offset


class EarlyStarts:
    """The grants of each owned partition."""

    def __init__(
        self,
        ledger_topic: str,
        queue: Queue,
        substitute: Callable[[Partition, Outgoing, Outgoing], asyncio.Future[None] | None],
        *,
        leased: Callable[[Partition], bool],
        claims: Claims,
        alive: Callable[[RunItem], bool],
        window: int = GRANT_WINDOW,
    ) -> None:
        self._topic = ledger_topic
        self._queue = queue
        self._substitute = substitute
        self._leased = leased
        self._claims = claims
        self._alive = alive  # still this replica's and unfinished: a grant after its `finished` would undo it
        self._window = max(1, window)
        self._grants: dict[Partition, dict[str, _Grant]] = {}  # granted, not started yet
        self._waiting: dict[Partition, dict[str, RunItem]] = {}  # in the order received (a dict keeps it)

    def received(self, item: RunItem, *, queued: Outgoing | None = None) -> None:
        """A run to run; `queued`: its `received` record, queued in this same call stack and not sent yet (a grant
        given now takes its place)."""
        if item.record.attempt != 0:
            return  # its first attempt counts as made already: it starts at 2, after a commit
        self._waiting.setdefault(item.source, {})[item.run.run_id] = item
        self._fill(item.source, (item.run.run_id, queued) if queued is not None else None)

    async def may_start(self, item: RunItem) -> bool:
        """Called as attempt 1 of `item` starts: True when it may start with its own record only queued."""
        grant = self._grants.get(item.source, {}).pop(item.run.run_id, None)
        self._waiting.get(item.source, {}).pop(item.run.run_id, None)  # started: a grant now would undo its record
        self._fill(item.source, None)
        if grant is None or not self._leased(item.source):
            return False
        if grant.committed.done():
            return not grant.committed.cancelled() and grant.committed.exception() is None
        if grant.with_message and self._claims.covers(item.source, item.offset):
            return True
        with contextlib.suppress(Exception):
            await asyncio.shield(grant.committed)
            return True
        return False

    def forget_partitions(self, parts: set[Partition]) -> None:
        """These partitions left: their grants are their next owner's to judge."""
        for part in parts:
            self._grants.pop(part, None)
            self._waiting.pop(part, None)

    def _fill(self, part: Partition, just_queued: tuple[str, Outgoing] | None) -> None:
        waiting = self._waiting.get(part)
        if not waiting:
            return
        grants = self._grants.setdefault(part, {})
        if len(grants) >= self._window:  # runs that ended without starting (a cached result, a stop) give room
            for run_id in [r for r, g in grants.items() if not self._alive(g.item)]:
                del grants[run_id]
        while waiting and len(grants) < self._window:
            item = waiting.pop(next(iter(waiting)))
            if not self._alive(item):
                continue
            run_id = item.run.run_id
            value = item.record.with_state("dispatched", attempt=0).to_bytes()
            committed: asyncio.Future[None] | None = None
            received = just_queued[1] if just_queued is not None and just_queued[0] == run_id else None
            if received is not None:  # in its place, completing its suggestion's offset as it would have
                grant = Outgoing(self._topic, received.key, value, received.completes, received.partition)
                committed = self._substitute(part, received, grant)
            if committed is None:
                committed = self._queue(part, Outgoing(self._topic, run_id.encode(), value, partition=part.partition))
                received = None
            if committed is None:  # not owned any more: nothing starts early here
                waiting.clear()
                return
            grants[run_id] = _Grant(item, committed, with_message=received is not None)
