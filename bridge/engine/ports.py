"""The seams of one operation's life besides the executor: where its runs' story is recorded (the run ledger) and
who hears of it. The scheduler, the cache and early stopping talk to these, never to a file or a broker, so
`bridge run` and `bridge serve` share that code unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.contract.results import ProgressEvent, RunResult


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of one run: its last attempt, and its final result if it has one."""

    run_id: str
    attempt: int = 0
    node_id: str | None = None  # where its last attempt started, once it had
    reattach_info: Mapping[str, Any] = field(default_factory=dict)
    result: RunResult | None = None
    interrupted: bool = False


class RunLedger(Protocol):
    """The durable record of every run's state: an attempt starting, started, the run finished. Resume and
    reconciliation read it."""

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]: ...

    async def attempt_starting(self, operation_id: str, run_id: str, attempt: int) -> None:
        """Durable before the executor is asked, so a kill -9 at any moment counts this attempt; raises
        `bridge.errors.HandedOver` when the run is not this process's to run any more (it must not start)."""

    async def attempt_started(
        self, operation_id: str, run_id: str, attempt: int, node_id: str, reattach: Mapping[str, Any]
    ) -> None:
        """Where the attempt runs and how a later bridge process finds it again (`Executor.reattach`)."""

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None: ...


class OperationListener(Protocol):
    """Hears an operation's life: the CLI draws it, the Kafka service publishes it."""

    async def run_started(self, run_id: str, index: int, attempt: int) -> None: ...

    async def run_progress(self, event: ProgressEvent) -> None: ...

    async def run_finished(self, result: RunResult) -> None: ...
