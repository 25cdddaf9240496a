"""The local executor: each attempt is a subprocess of this machine, started from an argv list, never a shell.

`LocalExecutor.start` is the executor seam (`base.Executor`): it places the run under the work dir, does
its `init` steps, renders its command for that place and spawns it (`spawn`, the process-level part that the Ray
executor's actor reuses on its node)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.contract.limits import printable
from bridge.executors.base import EventCallback, MetricRecord, RunExit, RunPlace, RunSpec
from bridge.executors.child import start_child
from bridge.executors.environment import base_environment, run_environment
from bridge.executors.metrics_file import MetricsTail
from bridge.executors.process_group import GroupRecord, kill_leftovers, kill_orphan_group
from bridge.executors.startable import cannot_start
from bridge.executors.workspace import RunPaths, prepare_init
from bridge.logs import get_logger

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
POLL_INTERVAL_S = 0.1
CLOSE_WAIT_S = 10.0  # how long close() waits for killed runs to be reaped (SIGKILL is not refused)
SETPRIV = "setpriv"

MetricsCallback = Callable[[MetricRecord], None]


@dataclass(frozen=True)
class ProcessRequest:
    """One attempt as a process of this machine: what `LocalExecutor.spawn` starts."""

    run_id: str
    attempt: int
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    attempt_dir: Path  # stdout/stderr and the metrics file of this attempt
    outputs_dir: Path


def process_request(spec: RunSpec, paths: RunPaths, node_id: str) -> ProcessRequest:
    """`spec` rendered for its folders `paths` on the node `node_id`, as a process to spawn there."""
    place = RunPlace(node_id=node_id, artifacts_path=str(paths.artifacts), outputs_path=str(paths.outputs))
    command = spec.render(place)
    attempt_dir = paths.attempt(spec.attempt)
    source = Path(spec.source_dir) if spec.source_dir else paths.artifacts
    cwd = source / command.working_dir if command.working_dir else source
    env = {
        **command.env,
        "BRIDGE_METRICS_FILE": str(attempt_dir / "metrics.jsonl"),
        "BRIDGE_OUTPUTS_DIR": str(paths.outputs),
    }
    return ProcessRequest(
        run_id=spec.run_id,
        attempt=spec.attempt,
        argv=command.argv,
        env=env,
        cwd=cwd,
        attempt_dir=attempt_dir,
        outputs_dir=paths.outputs,
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A run must not outlive a bridge that was killed with -9: the kernel sends it SIGKILL then.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def _open_logs(attempt_dir: Path) -> list[int]:
    """The attempt's stdout.log and stderr.log, truncated, as file descriptors for the child (no Python file
    objects: the bridge never writes to them)."""
    fds: list[int] = []
    try:
        for name in ("stdout.log", "stderr.log"):
            fds.append(os.open(attempt_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class LocalRun:
    """One started attempt: its process (and process group) and its metrics file (its logs are the child's).

    When its main process ends, however it ends, whatever it left running in its group is killed: the run is
    over, and nothing would ever reap those processes.
    """

    def __init__(
        self,
        request: ProcessRequest,
        pid: int,
        exit_status: asyncio.Future[int],
        tail: MetricsTail,
        *,
        on_metrics: MetricsCallback,
        on_end: Callable[[LocalRun], None],
        node_id: str = "",
    ) -> None:
        self._request = request
        self._node_id = node_id
        self._pid = pid
        self._group = GroupRecord.of(pid)
        self._tail = tail
        self._on_metrics = on_metrics
        self._on_end = on_end
        self._exit = exit_status
        self._exit.add_done_callback(self._ended)

    @property
    def run_id(self) -> str:
        return self._request.run_id

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        """Its process group's record (`GroupRecord`), for `LocalExecutor.reattach` of a later bridge to stop."""
        return self._group.to_info()

    def _ended(self, _exit: asyncio.Future[int]) -> None:
        # Runs right after the main process was reaped, while its pid still names its group if anything is left.
        if kill_leftovers(self._group.pgid):
            log.warning("run_leftovers_killed", run_id=self.run_id, pgid=self._group.pgid)
        self._on_end(self)

    def _deliver(self, *, final: bool = False) -> None:
        for record in self._tail.read_new(final=final):
            self._on_metrics(record)

    async def wait(self) -> RunExit:
        while True:
            try:
                code = await asyncio.wait_for(asyncio.shield(self._exit), timeout=POLL_INTERVAL_S)
                break
            except TimeoutError:
                self._deliver()
        self._deliver(final=True)
        return RunExit(
            exit_code=code,
            outputs=self._tail.final_outputs(),
            logged_outputs=self._tail.logged_outputs or bool(self._tail.last_metrics),
            stderr_tail=_tail(self._request.attempt_dir / "stderr.log") if code != 0 else "",
        )

    def _signal_group(self, sig: signal.Signals) -> None:
        # The run and whatever it started share one process group (start_new_session): signal them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._group.pgid, sig)

    async def stop(self, grace_s: float) -> None:
        if self._exit.done():
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._exit), timeout=grace_s)
        except TimeoutError:
            log.warning("run_kill_after_grace", run_id=self.run_id, grace_s=grace_s)
            self._signal_group(signal.SIGKILL)
            await asyncio.shield(self._exit)

    def kill(self) -> asyncio.Future[int]:
        """SIGKILL the whole group now (the bridge is exiting); the future is done once the run is reaped."""
        if not self._exit.done():
            log.warning("run_killed_on_close", run_id=self.run_id, pgid=self._group.pgid)
            self._signal_group(signal.SIGKILL)
        return self._exit


class StartFailed:
    """An attempt whose process could not be started (no such program, a NUL byte in an argument, ...)."""

    def __init__(self, run_id: str, error: str, node_id: str = "", *, error_type: str = "start_failed") -> None:
        self._run_id = run_id
        self._error = error
        self._node_id = node_id
        self._error_type = error_type

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def pid(self) -> int | None:
        return None

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        """Nothing to find again: no process was started."""
        return {}

    async def wait(self) -> RunExit:
        return RunExit(
            exit_code=None,
            outputs={},
            logged_outputs=False,
            start_error=self._error,
            start_error_type=self._error_type,
        )

    async def stop(self, grace_s: float) -> None:
        return None


class LocalExecutor:
    """Runs attempts as local subprocesses; `max_parallel` is the cap across every operation.

    Each run gets the environment of `bridge.executors.environment` (with `env_passthrough` from the config's
    `executor.env_passthrough`) and is its own process group (`start_new_session`), killed as a whole when its
    main process ends, on stop and timeout, and by `close()`. Its main process gets SIGKILL when the bridge dies,
    even by kill -9 (PR_SET_PDEATHSIG); what it started is then found and killed by `reap_orphan` when a bridge
    takes the run up again. That signal is set by `setpriv --pdeathsig KILL` (util-linux) prefixed to the argv
    when `which` finds setpriv: no Python code then runs between fork and exec, so the spawn is a vfork instead
    of a copy of this whole process, and the event loop waits far less for each start (about 3x the starts/s and
    a third of the CPU per start in benchmarks/serve_throughput.py; more as the bridge's memory grows). Without
    setpriv, a `preexec_fn` sets it, at that cost.
    """

    def __init__(
        self,
        max_parallel: int | None = None,
        *,
        workdir: Path | None = None,
        env_passthrough: Iterable[str] = (),
        which: Callable[[str], str | None] = shutil.which,
        node_id: str | None = None,
    ) -> None:
        self._max_parallel = max_parallel or os.cpu_count() or 1
        self._workdir = workdir if workdir is not None else Path.cwd() / ".bridge"
        self._node_id = node_id or socket.gethostname()
        # What every run inherits, taken once: the bridge's environment as it started (reading os.environ is a
        # decode of every variable, and was a tenth of each start's time).
        self._base_env = base_environment(env_passthrough)
        self._setpriv = which(SETPRIV)
        self._running: set[LocalRun] = set()

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    @property
    def setpriv(self) -> str | None:
        """The setpriv that starts each run, or None when runs are started with a `preexec_fn`."""
        return self._setpriv

    async def start(self, spec: RunSpec, on_event: EventCallback) -> LocalRun | StartFailed:
        """Start one attempt under `<workdir>/runs/<run_id>/`, its `init` steps done there first."""
        paths = RunPaths.for_run(self._workdir, spec.run_id)
        try:
            await prepare_init(spec.init, paths.artifacts)
        except Exception as exc:  # git's own words (OSError), or a folder that cannot be made
            return StartFailed(spec.run_id, printable(str(exc)), self._node_id, error_type="init_failed")
        return await self.spawn(process_request(spec, paths, self._node_id), on_event)

    async def spawn(self, request: ProcessRequest, on_metrics: MetricsCallback) -> LocalRun | StartFailed:
        """Start one attempt's process; whatever keeps it from starting is a `StartFailed` with the reason, never
        raised."""
        program = printable(request.argv[0]) if request.argv else "<empty command>"
        env = run_environment(request.env, base=self._base_env, node_id=self._node_id)
        if (problem := cannot_start(request.argv, env, request.cwd)) is not None:
            return StartFailed(request.run_id, f"could not start `{program}`: {problem}")
        # The event loop waits for all of this at every start: no metrics file is made in advance (MetricsTail
        # waits for the run's first report to create it), but one an earlier bridge process left in this same
        # attempt folder would be read as this run's, so it goes, as the logs are truncated.
        metrics_path = request.attempt_dir / "metrics.jsonl"
        try:
            request.attempt_dir.mkdir(parents=True, exist_ok=True)
            request.outputs_dir.mkdir(parents=True, exist_ok=True)
            metrics_path.unlink(missing_ok=True)
            logs = _open_logs(request.attempt_dir)
        except OSError as exc:
            return StartFailed(request.run_id, f"could not prepare the run's folders: {exc}")
        argv = request.argv
        preexec_fn: Callable[[], None] | None = _die_with_parent
        if self._setpriv is not None:
            # setpriv execs the run in place: the pid is the run's, its environ the run's (reap_orphan).
            argv, preexec_fn = [self._setpriv, "--pdeathsig", "KILL", "--", *argv], None
        try:
            pid, exit_status = await start_child(
                argv, cwd=request.cwd, env=env, stdout=logs[0], stderr=logs[1], preexec_fn=preexec_fn
            )
        except (OSError, ValueError) as exc:  # ValueError (UnicodeEncodeError too): what cannot_start missed
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else printable(str(exc))
            return StartFailed(request.run_id, f"could not start `{program}`: {reason}")
        finally:
            for fd in logs:
                os.close(fd)  # the child has its own copies: the bridge never writes to them
        log.debug("run_process_started", run_id=request.run_id, attempt=request.attempt, pid=pid)
        run = LocalRun(
            request,
            pid,
            exit_status,
            MetricsTail(metrics_path),
            on_metrics=on_metrics,
            on_end=self._running.discard,
            node_id=self._node_id,
        )
        self._running.add(run)  # before its end can be seen: that is a callback of a later loop turn
        return run

    async def reattach(self, run_id: str, info: Mapping[str, Any], on_event: EventCallback) -> None:
        """Never: a local run dies with the bridge that started it (PR_SET_PDEATHSIG), so there is nothing to
        follow; what it started is killed here (`reap_orphan`) before the run goes again."""
        await self.reap_orphan(run_id, info)

    async def reap_orphan(self, run_id: str, info: Mapping[str, Any]) -> bool:
        """Kill what an earlier bridge left running of this run, from the `reattach_info` it recorded: its
        process group, even once the main process died, proven to be the run's (`process_group`)."""
        record = GroupRecord.from_info(info)
        if record is None:
            return False
        # A walk of /proc: off the event loop, since reconcile may reap many runs at once.
        try:
            killed = await asyncio.to_thread(kill_orphan_group, run_id, record)
        except OSError as exc:  # no /proc to walk: nothing can be proven this run's, so nothing is killed
            log.warning("orphan_reap_failed", run_id=run_id, pid=record.pid, error=str(exc))
            return False
        if killed:
            log.warning("orphan_run_killed", run_id=run_id, pid=record.pid, pgid=record.pgid, processes=killed)
        return killed > 0

    async def close(self) -> None:
        """Kill every run still running, with whatever it started (the bridge is exiting)."""
        exits = [run.kill() for run in list(self._running)]
        if exits:
            await asyncio.wait(exits, timeout=CLOSE_WAIT_S)
