"""Which input partitions this replica owns right now, and the moments between owning and not.

aiokafka revokes every partition at each rebalance and assigns most of them back a moment later. Between the
two, a partition is "handed over": its runs go on, their results wait (parked) to see whether it comes back. A
newly assigned partition is "reconciling" until its ledger is read: records of it wait for that, since the
rebalance listener runs beside the consume loop, which may already hold the partition's first records.
"""

from __future__ import annotations

import asyncio

from bridge.contract.results import RunResult
from bridge.kafka.offsets import Partition
from bridge.service.runs import RunItem


class Ownership:
    """Owned, handed-over and reconciled partitions, and the results parked while a partition is in between."""

    def __init__(self) -> None:
        self._owned: set[Partition] = set()
        self._handover: set[Partition] = set()  # revoked, not yet known whether they come back
        self._reconciled: dict[Partition, asyncio.Event] = {}
        self._gaps: dict[Partition, asyncio.Event] = {}  # set when a revoked partition's next assignment is known
        self._parked: dict[Partition, list[tuple[RunItem, RunResult]]] = {}
        # Taken from a predecessor that died holding them: runs it could have started, below this input offset.
        self._suspect_below: dict[Partition, int] = {}

    def owns(self, part: Partition) -> bool:
        """Whether this replica may publish for `part` now."""
        return part in self._owned

    def in_handover(self, part: Partition) -> bool:
        """Revoked, and not yet known whether it comes back."""
        return part in self._handover

    def reconciled(self, part: Partition) -> bool:
        """Owned and its ledger read: records and ledger runs of it may be taken."""
        ready = self._reconciled.get(part)
        return ready is not None and ready.is_set()

    async def wait_reconciled(self, part: Partition) -> None:
        """Wait until `part` is reconciled, or revoked meanwhile (then `owns` says so)."""
        ready = self._reconciled.setdefault(part, asyncio.Event())
        if not ready.is_set():
            await ready.wait()

    def mark_reconciled(self, part: Partition) -> None:
        """The partition's ledger is read: its records may be handled."""
        self._reconciled.setdefault(part, asyncio.Event()).set()

    def suspect(self, part: Partition, below: int) -> None:
        """`part`'s previous owner died holding it (`lease.py`): suggestion records below offset `below`, and the
        runs of its ledger it had granted an early start, may have had a first attempt nothing recorded."""
        self._suspect_below[part] = below

    def suspected(self, part: Partition, offset: int | None) -> bool:
        """Whether a run of `part` (from the suggestion record at `offset`; None: from the ledger) may have had an
        attempt a dead predecessor started and never recorded."""
        below = self._suspect_below.get(part)
        return below is not None and (offset is None or offset < below)

    def revoke(self, parts: set[Partition]) -> None:
        """These partitions leave (maybe for a moment): records waiting for them wake and see they are gone."""
        self._owned -= parts
        for part in parts:
            self._suspect_below.pop(part, None)
        self._handover |= parts
        for part in parts:
            ready = self._reconciled.pop(part, None)
            if ready is not None:
                ready.set()

    def assign(self, parts: set[Partition]) -> tuple[set[Partition], set[Partition]]:
        """These partitions are this replica's now; returns the handed-over ones that came `back` and those `gone`."""
        self._owned |= parts
        back, gone = self._handover & self._owned, self._handover - self._owned
        self._handover = set()
        return back, gone

    def close_gaps(self, parts: set[Partition]) -> None:
        """Whoever waits to know whether these come back may go on."""
        for part in parts:
            gap = self._gaps.pop(part, None)
            if gap is not None:
                gap.set()

    async def wait_gap(self, part: Partition) -> None:
        """If `part` is handed over, wait until its next assignment is known."""
        if part in self._handover:
            await self._gaps.setdefault(part, asyncio.Event()).wait()

    def drop(self, part: Partition) -> None:
        """Lost for good (fenced by another replica): whoever waits to know whether it comes back learns it does
        not (a record it waits to publish would otherwise hold its run's slot for good)."""
        self._owned.discard(part)
        self._handover.discard(part)
        self._suspect_below.pop(part, None)
        self.close_gaps({part})

    def drop_all(self) -> None:
        """Publish nothing more (shutdown past its grace)."""
        self._owned.clear()

    def park(self, item: RunItem, result: RunResult) -> None:
        """A result that finished while its partition was handed over: published if the partition comes back."""
        self._parked.setdefault(item.source, []).append((item, result))

    def unpark(self, part: Partition) -> list[tuple[RunItem, RunResult]]:
        """The results parked for `part`."""
        return self._parked.pop(part, [])
