"""The seams of the bridge, as Protocols: where runs execute, where their story is recorded, who hears of it.

Everything on the operation's life (scheduler, cache, early stopping) talks to these, never to a concrete
executor, broker or file, so `bridge run` and `bridge serve` share that code unchanged.
"""

from __future__ import annotations

import asyncio
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


# ---- what the service needs of a message broker -------------------------------------------------------------
# The Kafka side (bridge/kafka/) depends on these, never on one broker client: aiokafka's clients fill them in
# `serve`, and an in-memory broker (bridge/kafka/memory.py) in the fast tests. Record and partition types stay
# structural so that this module imports no broker client.


class TopicPartitionLike(Protocol):
    """A topic partition as a broker client names it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class ConsumedRecord(Protocol):
    """A record as a consumer hands it over."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class MessageConsumer(Protocol):
    """The group consumer of the suggestions and control topics: what the consume loop and rebalances use."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: list[str], listener: Any) -> None:
        """Join the group; `listener` (a `ConsumerRebalanceListener`) hears `on_partitions_revoked` and
        `on_partitions_assigned`, each awaited."""

    async def getmany(
        self, *partitions: TopicPartitionLike, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartitionLike, list[ConsumedRecord]]:
        """Records of the assigned, unpaused partitions after their positions, waiting up to `timeout_ms`."""

    def pause(self, *partitions: TopicPartitionLike) -> None: ...

    def resume(self, *partitions: TopicPartitionLike) -> None: ...

    def assignment(self) -> set[TopicPartitionLike]: ...

    async def committed(self, partition: TopicPartitionLike) -> int | None:
        """The group's committed offset of `partition` (the next one to read), None when it has none."""

    async def beginning_offsets(self, partitions: list[TopicPartitionLike]) -> dict[TopicPartitionLike, int]: ...

    async def end_offsets(self, partitions: list[TopicPartitionLike]) -> dict[TopicPartitionLike, int]: ...

    def last_stable_offset(self, partition: TopicPartitionLike) -> int | None: ...

    def highwater(self, partition: TopicPartitionLike) -> int | None: ...


class TransactionalPublisher(Protocol):
    """Publishes what one consumed partition caused, with its committable offsets, in atomic transactions."""

    failed: BaseException | None  # set once it stopped for good (fenced, or refused)
    dropped: int  # records that could never be published

    async def start(self) -> None:
        """Connect, fencing any earlier owner of the same partition."""

    async def started(self) -> None:
        """Wait until `start()` (whoever called it) has fenced the previous owner."""

    def publish(self, record: Any) -> asyncio.Future[None]:
        """Queue a record (a `bridge.kafka.publisher.Outgoing`) for the next transaction; the future is done when
        that transaction is committed."""

    def complete(self) -> asyncio.Future[None]:
        """Commit newly committable offsets in the next transaction, with nothing to publish."""

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued, then stop; raises `PublishIncomplete` when that could not be done in time."""


class LedgerReader(Protocol):
    """Reads one ledger partition, from where `index` stopped to its end, into `index` (a `LedgerIndex`)."""

    async def __call__(self, partition: int, index: Any) -> None: ...
