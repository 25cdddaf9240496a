"""The runs this replica owns and has not finished: one table, and who is running each of them.

The consume loop asks it how much room is left (backpressure counts runs, not records), the ledger adapter and
retention read it (what is in flight, which run folders are in use), control finds a run's operation through it,
and reconciliation and rebalances take runs in and out of it. Nothing else keeps a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from bridge.engine.scheduler import OperationRunner
from bridge.kafka.offsets import Partition
from bridge.service.runs import RunItem


class RunRegistry:
    """Runs in flight here, the operation running each, and how many more fit (`max_in_flight`)."""

    def __init__(self, max_in_flight: int) -> None:
        self._max = max_in_flight
        self._items: dict[str, RunItem] = {}
        self._runners: dict[str, OperationRunner] = {}  # by operation id
        self._owner: dict[str, OperationRunner] = {}  # by run id
        self._by_suggestion: dict[tuple[str, str], str] = {}  # (study, suggestion id) -> run id
        self._freed = asyncio.Event()
        self.peak = 0  # the most runs in flight at once so far: what backpressure bounds

    # ---- the table -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def get(self, run_id: str) -> RunItem | None:
        """The run, if this replica has it in flight."""
        return self._items.get(run_id)

    def add(self, item: RunItem) -> None:
        """Take a run in."""
        self._items[item.run.run_id] = item
        self.peak = max(self.peak, len(self._items))

    def pop(self, run_id: str) -> RunItem | None:
        """Let a run go (finished, handed over or refused); room is freed."""
        item = self._items.pop(run_id, None)
        if item is not None:
            self._freed.set()
        return item

    def of_partition(self, part: Partition) -> list[RunItem]:
        """The runs caused by records of `part`."""
        return [item for item in self._items.values() if item.source == part]

    # ---- room ----------------------------------------------------------------------------------------

    @property
    def room(self) -> int:
        """How many more runs fit before consumption pauses."""
        return self._max - len(self._items)

    async def wait_for_room(self, timeout_s: float) -> None:
        """Return when a run left, or after `timeout_s` (the caller's loop period)."""
        self._freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout=timeout_s)

    # ---- who runs what -------------------------------------------------------------------------------

    def bind(self, runner: OperationRunner, items: list[RunItem], study: str) -> None:
        """`runner` runs `items`: control finds them by run id, suggestion id and operation id."""
        self._runners[runner.plan.operation_id] = runner
        for item in items:
            self._owner[item.run.run_id] = runner
            self._by_suggestion[(study, item.run.suggestion_id or "")] = item.run.run_id

    def unbind(self, runner: OperationRunner, items: list[RunItem], study: str) -> None:
        """The operation ended."""
        self._runners.pop(runner.plan.operation_id, None)
        for item in items:
            self._owner.pop(item.run.run_id, None)
            self._by_suggestion.pop((study, item.run.suggestion_id or ""), None)

    def runner(self, operation_id: str) -> OperationRunner | None:
        """The operation's runner, if it runs here."""
        return self._runners.get(operation_id)

    def runners(self) -> list[OperationRunner]:
        """Every operation running here."""
        return list(self._runners.values())

    def owner(self, run_id: str) -> OperationRunner | None:
        """The runner of the operation a run belongs to."""
        return self._owner.get(run_id)

    def run_of_suggestion(self, study: str, suggestion_id: str) -> str | None:
        """The run id of a suggestion in flight here, its operation started or not yet (still being batched)."""
        run_id = self._by_suggestion.get((study, suggestion_id))
        if run_id is not None:
            return run_id
        # Not bound to an operation yet: at most `max_in_flight` runs to look at, for a stop.
        for item in self._items.values():
            if item.study == study and item.run.suggestion_id == suggestion_id:
                return item.run.run_id
        return None
