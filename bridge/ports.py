"""The seams of the bridge, as Protocols: where runs execute, where their story is recorded, who hears of it.

Everything on the operation's life (scheduler, cache, early stopping) talks to these, never to a concrete
executor, broker or file, so `bridge run` and `bridge serve` share that code unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bridge.models import ProgressEvent, RunResult


@dataclass(frozen=True)
class MetricRecord:
    """One line a run appended to its metrics file: intermediate metrics, or its final outputs."""

    step: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunRequest:
    """Everything an executor needs to start one attempt of one run."""

    run_id: str
    attempt: int
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    attempt_dir: Path  # stdout/stderr and the metrics file of this attempt
    outputs_dir: Path
    resources: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunExit:
    """How an attempt ended, as the executor saw it."""

    exit_code: int | None  # None: it never started; negative: killed by that signal
    outputs: Mapping[str, Any]  # what the run logged with log_outputs, else the last value of each metric
    logged_outputs: bool  # True when the run called log_outputs (or reported any metric)
    start_error: str | None = None
    stderr_tail: str = ""


class RunHandle(Protocol):
    """A started attempt."""

    @property
    def run_id(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def dispatch_info(self) -> Mapping[str, Any]:
        """JSON-ready facts the ledger keeps of this attempt, so `Executor.reap_orphan` in a later bridge process
        can find and stop what is left of it (the local executor: pid, process group, start time, boot id)."""

    async def wait(self) -> RunExit:
        """Wait until the attempt ends; metrics are delivered to the start() callback before this returns."""

    async def stop(self, grace_s: float) -> None:
        """Ask the attempt to stop (SIGTERM), then force it (SIGKILL) after `grace_s` seconds."""


MetricsCallback = Callable[[MetricRecord], None]


class Executor(Protocol):
    """Where runs execute: local processes, a Ray cluster, ..."""

    @property
    def max_parallel(self) -> int:
        """How many attempts this executor runs at once, across every operation."""

    async def start(self, request: RunRequest, on_metrics: MetricsCallback) -> RunHandle: ...

    async def reap_orphan(self, run_id: str, info: Mapping[str, Any]) -> bool:
        """Stop an attempt left running by an earlier bridge process (from its ledger info); True if one was."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of one run: its last attempt, and its final result if it has one."""

    run_id: str
    attempt: int = 0
    dispatch_info: Mapping[str, Any] = field(default_factory=dict)
    result: RunResult | None = None
    interrupted: bool = False


class RunLedger(Protocol):
    """The durable record of every run's state: dispatched, finished. Resume and reconciliation read it."""

    async def load(self, operation_id: str) -> dict[str, LedgerEntry]: ...

    async def dispatched(self, operation_id: str, run_id: str, attempt: int, info: Mapping[str, Any]) -> None: ...

    async def finished(self, operation_id: str, result: RunResult, *, interrupted: bool) -> None: ...


class OperationListener(Protocol):
    """Hears an operation's life: the CLI draws it, the Kafka service publishes it."""

    async def run_started(self, run_id: str, index: int, attempt: int) -> None: ...

    async def run_progress(self, event: ProgressEvent) -> None: ...

    async def run_finished(self, result: RunResult) -> None: ...
