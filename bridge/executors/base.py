"""The run seam: what the scheduler asks of wherever runs execute (local processes, a Ray cluster, ...).

`RunSpec` says what to run, never where; an `Executor` places and starts it, and a `RunHandle` follows the attempt
to its `RunExit`, delivering its `RunEvent`s on the way. Each executor of this folder implements `Executor`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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
