"""The seams of the bridge, as Protocols: where runs execute, where their story is recorded, who hears of it.

Everything on the operation's life (scheduler, cache, early stopping) talks to these, never to a concrete
executor, broker or file, so `bridge run` and `bridge serve` share that code unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.models import ProgressEvent, RunResult


@dataclass(frozen=True)
class MetricRecord:
    """One line a run appended to its metrics file: intermediate metrics, or its final outputs."""

    step: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunPlace:
    """Where an executor put an attempt, as the run sees it on its node: what its templates are rendered with."""

    node_id: str
    artifacts_path: str  # `{{ globals.artifacts_path }}`: the run's folder on that node
    outputs_path: str  # `{{ globals.run_outputs_path }}`, and the run's BRIDGE_OUTPUTS_DIR


@dataclass(frozen=True)
class RunCommand:
    """A run's command rendered for one place: an argv list (never a shell), its variables, its workingDir."""

    argv: list[str]
    env: Mapping[str, str]
    working_dir: str | None = None  # relative to the template's folder (`RunSpec.source_dir`) when not absolute


@dataclass(frozen=True)
class GitInit:
    """One `init: [{git: ...}]` step of the component: cloned into the run's folder where the run runs."""

    url: str
    revision: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class RunSpec:
    """One attempt of one run, as the scheduler asks for it: what to run, never where or how.

    The executor chooses the node and the folders, does the `init` steps there, then renders the command for that
    place with `render` (pure: the scheduler has already rendered it once, so it does not fail for the values).
    """

    run_id: str
    attempt: int
    operation_id: str
    render: Callable[[RunPlace], RunCommand]
    init: tuple[GitInit, ...] = ()
    resources: Mapping[str, Any] | None = None  # the container's `resources` (Kubernetes form), placement hints
    source_dir: str | None = None  # the template's folder on the bridge's host, for relative paths in the command


@dataclass(frozen=True)
class RunExit:
    """How an attempt ended, as the executor saw it."""

    exit_code: int | None  # None: it never started; negative: killed by that signal
    outputs: Mapping[str, Any]  # what the run logged with log_outputs, else the last value of each metric
    logged_outputs: bool  # True when the run called log_outputs (or reported any metric)
    start_error: str | None = None
    start_error_type: str = "start_failed"  # or `init_failed`: its init steps failed where it was to run
    stderr_tail: str = ""
    lost: bool = False  # the node it ran on went away: the attempt failed through no fault of the run


@dataclass(frozen=True)
class LogLine:
    """A line the run wrote to its stdout or stderr."""

    stream: str  # "stdout" | "stderr"
    line: str


RunEvent = MetricRecord | LogLine
"""What an attempt reports while it runs: its intermediate metrics (or final outputs), its log lines."""

EventCallback = Callable[[RunEvent], None]


class RunHandle(Protocol):
    """A started attempt, wherever it runs."""

    @property
    def run_id(self) -> str: ...

    @property
    def node_id(self) -> str:
        """The node it runs on (its BRIDGE_NODE_ID)."""

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        """JSON-ready facts the ledger keeps of this attempt, so `Executor.reattach` in a later bridge process
        can find it again (the local executor: its process group, to stop it; Ray: its actor's name)."""

    async def wait(self) -> RunExit:
        """Wait until the attempt ends; its events are delivered to the start() callback before this returns."""

    async def stop(self, grace_s: float) -> None:
        """Ask the attempt to stop (SIGTERM), then force it (SIGKILL) after `grace_s` seconds."""


class Executor(Protocol):
    """Where and how runs execute: local processes, a Ray cluster, ... The scheduler decides when."""

    @property
    def max_parallel(self) -> int:
        """How many attempts this executor runs at once, across every operation."""

    async def start(self, spec: RunSpec, on_event: EventCallback) -> RunHandle:
        """Place and start one attempt, returning once it runs somewhere; an attempt that cannot start is a
        handle whose exit says why (`RunExit.start_error`), not an exception."""

    async def reattach(self, run_id: str, info: Mapping[str, Any], on_event: EventCallback) -> RunHandle | None:
        """Follow an attempt an earlier bridge process started (from its ledger `info`), if it is still there to
        follow, even as ended; None when it is not, after stopping whatever is left of it."""

    async def close(self) -> None:
        """Let go of every attempt (the bridge is exiting): what cannot outlive the bridge is stopped."""


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
        """Durable before the executor is asked, so a kill -9 at any moment counts this attempt."""

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

    def publish(self, record: Any, *, replacing: Any = None) -> asyncio.Future[None]:
        """Queue a record (a `bridge.kafka.publisher.Outgoing`) for the next transaction; the future is done when
        that transaction is committed."""

    def substitute(self, old: Any, new: Any) -> asyncio.Future[None] | None:
        """`new` in the place of `old` if `old` is still queued (the future of their transaction), else None."""

    def committed_within(self, seconds: float) -> bool:
        """Whether a transaction of it committed in the last `seconds`."""

    def complete(self) -> asyncio.Future[None]:
        """Commit newly committable offsets in the next transaction, with nothing to publish."""

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

    async def close(self, timeout_s: float = 30.0) -> None:
        """Publish what is queued, then stop; raises `PublishIncomplete` when that could not be done in time."""


class LedgerReader(Protocol):
    """Reads one ledger partition, from where `index` stopped to its end, into `index` (a `LedgerIndex`)."""

    async def __call__(self, partition: int, index: Any) -> None: ...
