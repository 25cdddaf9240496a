"""Who owned a partition last, and whether they let it go cleanly: what lets a run start before its ledger records are
committed, and a later owner still count every attempt.

A first attempt that holds a grant (`early_start.py`) starts as soon as its `dispatched` record is *queued* on the
partition's transactional producer (`run_ledger.TopicLedger`): it commits within a few ms, always before the
run's result, which is in a later transaction of the same producer. The price is what a kill -9 in between leaves:
an attempt that ran with nothing of it committed. A next owner cannot see it, so it must assume it, and only where
it could have happened:

- Each owner commits an `acquired` marker (`messages.OwnerMarker`, key `~owner` in the ledger partition) when it
  takes a partition, before any of its runs start, and queues a `released` marker when it lets the partition go
  cleanly (a revoke, a drained shutdown): after every record of a run it started, so `released` means nothing is
  missing.
- A fresh run whose grant has not committed yet starts early only if its suggestion record is below the partition's
  committed *claim*: a later `acquired` marker the owner queues as records are handled (`Claims`), `CLAIM_AHEAD`
  offsets past the last one, so in a steady stream the claim is committed before the records it covers arrive. Past
  the claim (a burst), the run waits for its grant's commit.
- A new owner that finds `released` (or no marker: a first owner, or an earlier bridge) counts exactly what the
  ledger says. One that finds `acquired` knows its predecessor died holding the partition: each run it could have
  started (one it had granted, or from a suggestion record below its claim and the partition's end) counts attempt 1
  as made, and runs as attempt 2; a run only `received` never started. Only first attempts ever start early, so no
  more than one attempt can be missing; later attempts wait for their `dispatched` commit.
- A run starts early only while the partition's producer committed within `LEASE_S`: a replica whose event loop
  stalled for longer may have lost the partition without knowing (its session expired); it then waits for the
  commit, which fails if it was fenced, instead of starting a run its successor runs too.

A ledger reader of an earlier version dead-letters the marker instead of running it (its schema is not a ledger
record's), and a run id, a UUID, can never be `~owner`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.contract.messages import OWNER_SCHEMA, OwnerMarker
from bridge.kafka.base import Outgoing
from bridge.kafka.offsets import Partition

OWNER_KEY = "~owner"
LEASE_S = 3.0  # well inside aiokafka's default 10 s session: a replica that committed this recently still owns
# Input offsets claimed past the last handled: the next records of a steady stream start early; a crash makes the
# runs of at most these few records (never seen by the dead owner) attempt 2 at the next owner.
CLAIM_AHEAD = 2

OwnerState = Literal["acquired", "released"]


@dataclass(frozen=True)
class Owner:
    """What a partition's last `~owner` marker says."""

    state: OwnerState
    claim: int | None = None


def owner_marker(state: OwnerState, claim: int | None = None) -> bytes:
    """The value of a `~owner` ledger record this replica writes."""
    return OwnerMarker(state=state, owner=socket.gethostname(), at=time.time(), claim=claim).to_json().encode()


def owner_of(value: bytes | None) -> Owner | None:
    """What a `~owner` record tells; None for anything else (a tombstone, a record not written by a bridge)."""
    try:
        data = json.loads(value or b"")
        state = data.get("state") if data.get("schema") == OWNER_SCHEMA else None
        claim = data.get("claim")
    except (ValueError, AttributeError, RecursionError):
        return None
    if state not in ("acquired", "released"):
        return None
    return Owner(state, claim if isinstance(claim, int) and not isinstance(claim, bool) else None)


def owner_record(ledger_topic: str, part: Partition, state: OwnerState, claim: int | None = None) -> Outgoing:
    """The `~owner` record of `part`, for its ledger partition."""
    return Outgoing(ledger_topic, OWNER_KEY.encode(), owner_marker(state, claim), partition=part.partition)


class Queue(Protocol):
    """`Publishers.publish`: queue a record of a partition, in place of `replacing` if that one is still queued;
    None when this replica no longer owns the partition."""

    def __call__(
        self, part: Partition, record: Outgoing, *, replacing: Outgoing | None = None
    ) -> asyncio.Future[None] | None: ...


class Claims:
    """The input offsets of each owned partition whose runs may start before their records commit."""

    def __init__(self, ledger_topic: str, queue: Queue) -> None:
        self._topic = ledger_topic
        self._queue = queue
        self._queued: dict[Partition, int] = {}  # the claim last queued
        self._committed: dict[Partition, int] = {}  # the claim last committed

    def acquired(self, part: Partition, claim: int) -> None:
        """`part`'s `acquired` marker is committed, claiming records below `claim`."""
        self._queued[part] = self._committed[part] = claim

    def forget(self, parts: set[Partition]) -> None:
        """These partitions left."""
        for part in parts:
            self._queued.pop(part, None)
            self._committed.pop(part, None)

    def handled(self, part: Partition, offset: int) -> None:
        """The record of `part` at `offset` was handled (its runs received): keep the claim ahead of it, not of
        records fetched and held back (a crash makes those attempt 2 at the next owner for nothing)."""
        queued = self._queued.get(part)
        if queued is None or offset + CLAIM_AHEAD // 2 < queued:
            return
        claim = offset + 1 + CLAIM_AHEAD
        done = self._queue(part, owner_record(self._topic, part, "acquired", claim))
        if done is None:
            return
        self._queued[part] = claim

        def committed(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is None and part in self._committed:
                self._committed[part] = max(self._committed[part], claim)

        done.add_done_callback(committed)

    def covers(self, part: Partition, offset: int | None) -> bool:
        """Whether a run of `part` from the suggestion record at `offset` (None: from the ledger, which the
        committed `acquired` marker covers) may start before its records commit."""
        committed = self._committed.get(part)
        return committed is not None and (offset is None or offset < committed)
