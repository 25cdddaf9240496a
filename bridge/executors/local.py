"""The local executor: each attempt is a subprocess of this machine, started from an argv list, never a shell."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import structlog

from bridge.executors.metrics_file import MetricsTail
from bridge.ports import MetricsCallback, RunExit, RunRequest

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
POLL_INTERVAL_S = 0.1
SETPRIV = "setpriv"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A run must not outlive a bridge that was killed with -9: the kernel sends it SIGKILL then.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _cannot_execute(argv: list[str], env: Mapping[str, str], cwd: Path) -> str | None:
    """Why `argv[0]` cannot be executed, in the words exec would use; None when it can.

    Under setpriv, a missing program is setpriv's own exit status 127 with a line on stderr: looked up here
    first, so such a run still fails with `start_failed` and the reason, as without setpriv.
    """
    if not argv:
        return "the command is empty"
    program = argv[0]
    if os.sep in program:
        path = cwd / program  # relative to the run's working directory, as exec sees it; absolute stays so
        if not path.exists():
            return os.strerror(errno.ENOENT)
        if path.is_dir() or not os.access(path, os.X_OK):
            return os.strerror(errno.EACCES)
        return None
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return os.strerror(errno.ENOENT)
    return None


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def run_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The bridge's environment, with its own interpreter first on PATH so `python3` in a command is the same
    Python (and finds `bridge.tracking`), and the run's variables on top."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class LocalRun:
    """One started attempt: its process, its log files and its metrics file."""

    def __init__(
        self,
        request: RunRequest,
        proc: asyncio.subprocess.Process,
        logs: list[IO[bytes]],
        tail: MetricsTail,
        on_metrics: MetricsCallback,
    ) -> None:
        self._request = request
        self._proc = proc
        self._logs = logs
        self._tail = tail
        self._on_metrics = on_metrics
        self._exit: asyncio.Future[int] = asyncio.ensure_future(proc.wait())

    @property
    def run_id(self) -> str:
        return self._request.run_id

    @property
    def pid(self) -> int | None:
        return self._proc.pid

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
        for f in self._logs:
            f.close()
        return RunExit(
            exit_code=code,
            outputs=self._tail.final_outputs(),
            logged_outputs=self._tail.logged_outputs or bool(self._tail.last_metrics),
            stderr_tail=_tail(self._request.attempt_dir / "stderr.log") if code != 0 else "",
        )

    async def stop(self, grace_s: float) -> None:
        if self._exit.done():
            return
        # The run and whatever it started share one process group (start_new_session): signal them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._exit), timeout=grace_s)
        except TimeoutError:
            log.warning("run_kill_after_grace", run_id=self.run_id, grace_s=grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await asyncio.shield(self._exit)


class StartFailed:
    """An attempt whose process could not be started (no such program, permission denied, ...)."""

    def __init__(self, request: RunRequest, error: str) -> None:
        self._request = request
        self._error = error

    @property
    def run_id(self) -> str:
        return self._request.run_id

    @property
    def pid(self) -> int | None:
        return None

    async def wait(self) -> RunExit:
        return RunExit(exit_code=None, outputs={}, logged_outputs=False, start_error=self._error)

    async def stop(self, grace_s: float) -> None:
        return None


class LocalExecutor:
    """Runs attempts as local subprocesses; `max_parallel` is the cap across every operation.

    Each run is its own process group (`start_new_session`) and gets SIGKILL when the bridge dies, even by
    kill -9 (PR_SET_PDEATHSIG). That signal is set by `setpriv --pdeathsig KILL` (util-linux) prefixed to the
    argv when `which` finds setpriv: no Python code then runs between fork and exec, so the spawn is a vfork
    instead of a copy of this whole process, and the event loop waits far less for each start (about 3x the
    starts/s and a third of the CPU per start in benchmarks/serve_throughput.py; more as the bridge's memory
    grows). Without setpriv, a `preexec_fn` sets it, at that cost.
    """

    def __init__(self, max_parallel: int | None = None, *, which: Callable[[str], str | None] = shutil.which) -> None:
        self._max_parallel = max_parallel or os.cpu_count() or 1
        self._setpriv = which(SETPRIV)

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    @property
    def setpriv(self) -> str | None:
        """The setpriv that starts each run, or None when runs are started with a `preexec_fn`."""
        return self._setpriv

    async def start(self, request: RunRequest, on_metrics: MetricsCallback) -> LocalRun | StartFailed:
        program = request.argv[0] if request.argv else "<empty command>"
        env = run_environment(request.env)
        if (problem := _cannot_execute(request.argv, env, request.cwd)) is not None:
            return StartFailed(request, f"could not start `{program}`: {problem}")
        # The event loop waits for all of this at every start: no metrics file is made in advance (MetricsTail
        # waits for the run's first report to create it), but one an earlier bridge process left in this same
        # attempt folder would be read as this run's, so it goes, as the logs are truncated.
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        request.outputs_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = request.attempt_dir / "metrics.jsonl"
        metrics_path.unlink(missing_ok=True)
        stdout = (request.attempt_dir / "stdout.log").open("wb")
        stderr = (request.attempt_dir / "stderr.log").open("wb")
        argv = request.argv
        preexec_fn: Callable[[], None] | None = _die_with_parent
        if self._setpriv is not None:
            # setpriv execs the run in place: the pid is the run's, its environ the run's (reap_orphan).
            argv, preexec_fn = [self._setpriv, "--pdeathsig", "KILL", "--", *argv], None
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=request.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )
        except OSError as exc:
            stdout.close()
            stderr.close()
            return StartFailed(request, f"could not start `{program}`: {exc.strerror or exc}")
        log.debug("run_process_started", run_id=request.run_id, attempt=request.attempt, pid=proc.pid)
        return LocalRun(request, proc, [stdout, stderr], MetricsTail(metrics_path), on_metrics)

    async def reap_orphan(self, run_id: str, info: Mapping[str, Any]) -> bool:
        """Kill the process group an earlier bridge left, if that pid still is that run (checked by its env)."""
        pid = info.get("pid")
        if not isinstance(pid, int) or not _is_run_process(pid, run_id):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        log.warning("orphan_run_killed", run_id=run_id, pid=pid)
        return True

    async def close(self) -> None:
        return None


def _is_run_process(pid: int, run_id: str) -> bool:
    # A pid can be reused by an unrelated process: only a process carrying this run's id is ours.
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"BRIDGE_RUN_ID={run_id}".encode() in environ.split(b"\0")
