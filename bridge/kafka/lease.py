"""Who owned a partition last, and whether they let it go cleanly: what lets a run start before its ledger
records are committed, and a later owner still count every attempt.

A fresh run's first attempt starts as soon as its `received` and `dispatched` records are *queued* on the
partition's transactional producer (`run_ledger.KafkaRunLedger`): they commit within a few ms, always before its
result, which is in a later transaction of the same producer. The price is what a kill -9 in between leaves: an
attempt that ran with nothing of it committed. A next owner cannot see it, so it must assume it:

- Each owner commits an `acquired` marker (key `~owner` in the ledger partition) when it takes a partition, before
  any of its runs start, and queues a `released` marker when it lets the partition go cleanly (a revoke, a
  drained shutdown): after every record of a run it started, so a `released` marker means nothing is missing.
- A new owner that finds `released` (or no marker: a first owner, or a bridge that never started early) counts
  exactly what the ledger says. One that finds `acquired` knows its predecessor died holding the partition: each
  unfinished run it could have started (one `received` but not `dispatched`, or from a suggestion record below the
  partition's end offset at the takeover) counts attempt 1 as made, and runs as attempt 2. Only first attempts
  ever start early, so no more than one attempt can be missing; later attempts wait for their `dispatched`
  commit, as every start did before.
- A run starts early only while the partition's producer committed within `LEASE_S`: a replica whose event loop
  stalled for longer may have lost the partition without knowing (its session expired); it then waits for the
  commit, which fails if it was fenced, instead of starting a run its successor runs too.

The marker is a record of its own schema (`bridge.owner/v1`, `messages.OwnerMarker`), so a ledger reader of an
earlier version dead-letters it instead of running it (and a run id, a UUID, can never be `~owner`).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Literal

from bridge.messages import OWNER_SCHEMA, OwnerMarker

OWNER_KEY = "~owner"
LEASE_S = 3.0  # well inside aiokafka's default 10 s session: a replica that committed this recently still owns

OwnerState = Literal["acquired", "released"]


def owner_marker(state: OwnerState) -> bytes:
    """The value of the `~owner` ledger record this replica writes."""
    return OwnerMarker(state=state, owner=socket.gethostname(), at=time.time()).to_json().encode()


def owner_state(value: bytes | None) -> OwnerState | None:
    """The state a `~owner` record tells; None for anything else (a tombstone, a record not written here)."""
    try:
        data = json.loads(value or b"")
        state = data.get("state") if data.get("schema") == OWNER_SCHEMA else None
    except (ValueError, AttributeError, RecursionError):
        return None
    return state if state in ("acquired", "released") else None
