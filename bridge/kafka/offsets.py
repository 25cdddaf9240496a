"""Which offsets may be committed: an offset is committed only once everything its record caused is durable.

A record causes some units of work (one per suggestion it carries, or one dead letter). The committable offset
of a partition is one past the longest prefix of records whose units are all done, so a slow run holds back
the commit of the records after it, and a crash at any moment replays exactly what was not yet durable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Partition:
    """A topic partition, independent of any Kafka client's type."""

    topic: str
    partition: int


class OffsetTracker:
    """Units outstanding per record, per partition; `committable(tp)` gives what may be committed now."""

    def __init__(self) -> None:
        self._pending: dict[Partition, OrderedDict[int, int]] = {}
        self._committable: dict[Partition, int] = {}

    def add(self, tp: Partition, offset: int, units: int) -> None:
        """A record was consumed that causes `units` pieces of work (0: nothing to wait for)."""
        self._pending.setdefault(tp, OrderedDict())[offset] = units
        self._advance(tp)

    def done(self, tp: Partition, offset: int, units: int = 1) -> None:
        """`units` of a record's work are durable."""
        pending = self._pending.get(tp)
        if pending is None or offset not in pending:
            return  # a partition revoked meanwhile: its new owner replays the record
        pending[offset] = max(0, pending[offset] - units)
        self._advance(tp)

    def _advance(self, tp: Partition) -> None:
        pending = self._pending[tp]
        while pending:
            offset, units = next(iter(pending.items()))
            if units > 0:
                break
            pending.popitem(last=False)
            self._committable[tp] = offset + 1

    def committable(self, tp: Partition) -> int | None:
        """The offset of `tp` to commit now (the next one to read), if it moved, and forgets it. One partition's
        only: each partition's publisher commits its own, and must not take another's with it."""
        return self._committable.pop(tp, None)

    def revoke(self, tp: Partition) -> None:
        """Forget a partition this consumer no longer owns."""
        self._pending.pop(tp, None)
        self._committable.pop(tp, None)
