"""The one scheduler of an operation's life, shared by `bridge run` and `bridge serve`.

For each planned run: reuse its finished result from the ledger (resume), or answer it from the cache, or wait
for an identical run already in flight, or run it: under the operation's concurrency and the executor's global
cap, with `termination.timeout` per attempt and up to `termination.maxRetries` retries, while early stopping
watches every metric and every result. Stopping (early stopping, an interrupt, a control message) signals
running attempts (SIGTERM, then SIGKILL after a grace period) and skips runs not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bridge.cache import FileCache, cache_key, run_shape
from bridge.early_stopping import EarlyStopping, StopOperation, StopRun
from bridge.models import ProgressEvent, RunError, RunResult, RunStatus, StopReason
from bridge.plan import OperationPlan, PlannedRun
from bridge.polyaxon import RunGlobals, render_run
from bridge.ports import (
    Executor,
    LedgerEntry,
    MetricRecord,
    OperationListener,
    RunExit,
    RunHandle,
    RunLedger,
    RunRequest,
)
from bridge.text import printable
from bridge.workspace import RunPaths, prepare_init

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """What every operation of one bridge process shares: the executor and its global cap, the ledger, the
    cache, the runs in flight (so identical params run once) and where runs keep their files."""

    executor: Executor
    ledger: RunLedger
    workdir: Path
    cache: FileCache | None = None
    stop_grace_s: float = 10.0
    slots: asyncio.Semaphore = field(init=False)
    inflight: dict[str, asyncio.Future[RunResult]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.executor.max_parallel)


@dataclass(frozen=True)
class OperationOutcome:
    """How an operation ended: every run's one final result, in mapping order."""

    operation_id: str
    results: list[RunResult]
    early_stop: StopOperation | None
    interrupted: bool
    resumed: int

    def counts(self) -> dict[str, int]:
        """Runs by status, plus how many were answered from the cache."""
        out = {s.value: 0 for s in RunStatus}
        for r in self.results:
            out[r.status.value] += 1
        out["cached"] = sum(r.cached for r in self.results)
        return out


class _NullListener:
    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        return None

    async def run_progress(self, event: ProgressEvent) -> None:
        return None

    async def run_finished(self, result: RunResult) -> None:
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class OperationRunner:
    """Runs one operation's plan to its end; `stop()` and `stop_run()` may be called from outside meanwhile."""

    def __init__(self, plan: OperationPlan, runtime: Runtime, listener: OperationListener | None = None) -> None:
        self.plan = plan
        self._rt = runtime
        self._listener: OperationListener = listener or _NullListener()
        op = plan.operation
        matrix = op.matrix
        self._concurrency = plan.concurrency or (matrix.concurrency if matrix else None) or len(plan.runs) or 1
        self._op_slots = asyncio.Semaphore(self._concurrency)
        termination = op.effective_termination
        self._max_retries = (termination.max_retries if termination else None) or 0
        self._timeout_s = float(termination.timeout) if termination and termination.timeout else None
        cache = op.effective_cache
        self._cache_on = runtime.cache is not None and not (cache is not None and cache.disable)
        self._cache_ttl = float(cache.ttl) if cache is not None and cache.ttl else None
        self._cache_io = list(cache.io) if cache is not None and cache.io else None
        assert op.component is not None, "load_operation resolves the component"
        self._component = op.component
        self._run_shape = run_shape(self._component)  # all that shapes a run, so all of it keys the cache
        rules = (matrix.early_stopping if matrix else None) or []
        self._early = EarlyStopping(rules, total_runs=len(plan.runs))
        self._handles: dict[str, RunHandle] = {}
        self._stop_requests: dict[str, RunError] = {}
        self._steps: dict[str, int] = {}
        self._stopping: RunError | None = None
        self._early_stop: StopOperation | None = None
        self._interrupted = False
        self._pending_events: set[asyncio.Task[None]] = set()
        self._runs_by_id = {r.run_id: r for r in plan.runs}
        self._recorded: set[str] = set()

    @property
    def concurrency(self) -> int:
        """The operation's own cap on runs at once."""
        return self._concurrency

    # ---- control from outside -------------------------------------------------------------------------

    def stop(self, reason: str, *, kind: StopReason = StopReason.STOPPED) -> None:
        """Stop the whole operation: no new runs, running ones signalled, the rest skipped; `kind` is their
        results' `error.type`. `StopReason.INTERRUPTED` leaves them unfinished in the ledger, to run again."""
        if self._stopping is not None:
            return
        kind = StopReason(kind)
        self._interrupted = kind is StopReason.INTERRUPTED
        self._stopping = RunError(type=kind, message=reason)
        log.info("operation_stopping", operation_id=self.plan.operation_id, reason=reason)
        for run_id in list(self._handles):
            self._signal(run_id, self._stopping)

    def stop_run(self, run_id: str, reason: str, *, kind: StopReason = StopReason.STOPPED) -> bool:
        """Stop one run (running: signalled; not started yet: skipped). False if it is not this operation's."""
        if run_id not in self._runs_by_id:
            return False
        error = RunError(type=StopReason(kind), message=reason)
        self._stop_requests.setdefault(run_id, error)
        if run_id in self._handles:
            self._signal(run_id, error)
        return True

    def _signal(self, run_id: str, error: RunError) -> None:
        self._stop_requests.setdefault(run_id, error)
        handle = self._handles.get(run_id)
        if handle is not None:
            self._spawn(handle.stop(self._rt.stop_grace_s))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._pending_events.add(task)
        task.add_done_callback(self._pending_events.discard)

    # ---- the operation --------------------------------------------------------------------------------

    async def run(self) -> OperationOutcome:
        """Run every planned run to one final result."""
        previous = await self._rt.ledger.load(self.plan.operation_id)
        resumed = sum(1 for e in previous.values() if e.result is not None and not e.interrupted)
        if resumed:
            log.info("operation_resumed", operation_id=self.plan.operation_id, finished_before=resumed)
        tasks = [asyncio.create_task(self._run_one(run, previous.get(run.run_id))) for run in self.plan.runs]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            if self._pending_events:
                await asyncio.gather(*self._pending_events, return_exceptions=True)
        return OperationOutcome(
            operation_id=self.plan.operation_id,
            results=sorted(results, key=lambda r: r.index),
            early_stop=self._early_stop,
            interrupted=self._interrupted,
            resumed=resumed,
        )

    async def _run_one(self, run: PlannedRun, previous: LedgerEntry | None) -> RunResult:
        if previous is not None and previous.result is not None and not previous.interrupted:
            result: RunResult = previous.result
            self._observe_result(result)
            await self._listener.run_finished(result)
            return result
        if previous is not None and previous.result is None and previous.dispatch_info:
            await self._rt.executor.reap_orphan(run.run_id, previous.dispatch_info)
        first_attempt = (previous.attempt if previous is not None else 0) + 1
        result = await self._resolve(run, first_attempt)
        if result.run_id not in self._recorded:
            await self._record(result)
        self._observe_result(result)
        await self._listener.run_finished(result)
        return result

    async def _resolve(self, run: PlannedRun, first_attempt: int) -> RunResult:
        key = cache_key(self._run_shape, run.params, self._cache_io) if self._cache_on else None
        if key is not None:
            hit = self._cache_hit(run, key)
            if hit is not None:
                return hit
            leader = self._rt.inflight.get(key)
            if leader is not None:
                # An identical configuration is running right now: wait for it instead of running it twice.
                log.info("run_waits_for_identical", run_id=run.run_id, operation_id=self.plan.operation_id)
                first = await asyncio.shield(leader)
                if first.status is RunStatus.SUCCEEDED:
                    return self._result(run, RunStatus.SUCCEEDED, attempt=0, outputs=first.outputs, cached=True)
            future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
            self._rt.inflight[key] = future
            try:
                result = await self._execute(run, first_attempt)
            finally:
                if self._rt.inflight.get(key) is future:
                    del self._rt.inflight[key]
            future.set_result(result)
            if result.status is RunStatus.SUCCEEDED and self._rt.cache is not None:
                self._rt.cache.put(key, result.outputs, run.run_id)
            return result
        return await self._execute(run, first_attempt)

    def _cache_hit(self, run: PlannedRun, key: str) -> RunResult | None:
        assert self._rt.cache is not None
        entry = self._rt.cache.get(key, self._cache_ttl)
        if entry is None:
            return None
        log.info("run_cache_hit", run_id=run.run_id, from_run_id=entry.run_id)
        return self._result(run, RunStatus.SUCCEEDED, attempt=0, outputs=entry.outputs, cached=True)

    async def _record(self, result: RunResult) -> None:
        interrupted = self._interrupted and result.status in (RunStatus.STOPPED, RunStatus.SKIPPED)
        await self._rt.ledger.finished(self.plan.operation_id, result, interrupted=interrupted)
        self._recorded.add(result.run_id)

    async def _execute(self, run: PlannedRun, first_attempt: int) -> RunResult:
        if (skip := self._skip_reason(run)) is not None:
            return self._result(run, RunStatus.SKIPPED, attempt=first_attempt - 1, error=skip)
        async with self._op_slots, self._rt.slots:
            result = await self._attempts(run, first_attempt)
            # Durable before the slot frees: once the next run starts, a kill -9 never re-runs this one.
            await self._record(result)
            return result

    async def _attempts(self, run: PlannedRun, first_attempt: int) -> RunResult:
        paths = RunPaths.for_run(self._rt.workdir, run.run_id)
        attempt = first_attempt
        started_at = _now()
        while True:
            if (skip := self._skip_reason(run)) is not None:
                status = RunStatus.SKIPPED if attempt == first_attempt else RunStatus.STOPPED
                return self._result(run, status, attempt=attempt - 1, error=skip, started_at=started_at)
            status, outputs, error = await self._attempt(run, attempt, paths)
            retry = status is RunStatus.FAILED and attempt - first_attempt < self._max_retries
            if retry and self._stopping is None and run.run_id not in self._stop_requests:
                log.warning(
                    "run_retrying",
                    run_id=run.run_id,
                    attempt=attempt,
                    error=error.message if error else "",
                )
                self._early.forget(run.run_id)
                attempt += 1
                continue
            return self._result(run, status, attempt=attempt, outputs=outputs, error=error, started_at=started_at)

    def _skip_reason(self, run: PlannedRun) -> RunError | None:
        return self._stopping or self._stop_requests.get(run.run_id)

    async def _attempt(
        self, run: PlannedRun, attempt: int, paths: RunPaths
    ) -> tuple[RunStatus, Mapping[str, Any], RunError | None]:
        """One attempt, total: whatever goes wrong ends it with a failed status and why, never an exception
        (one would leave the run without a result and its operation waiting for it forever)."""
        handle: RunHandle | None = None
        try:
            prepared = await self._prepare(run, attempt, paths)
            if isinstance(prepared, RunError):
                return RunStatus.FAILED, {}, prepared
            # Dispatched is durable before the process exists, so a kill -9 at any moment counts this attempt.
            await self._rt.ledger.dispatched(self.plan.operation_id, run.run_id, attempt, {})
            try:
                handle = await self._rt.executor.start(prepared, lambda rec: self._on_metrics(run, rec))
            except Exception as exc:  # an executor's own start error would otherwise escape as an internal one
                log.warning("run_start_failed", run_id=run.run_id, attempt=attempt, error=printable(str(exc)))
                return RunStatus.FAILED, {}, RunError(type="start_failed", message=printable(str(exc)))
            exit_, timed_out = await self._follow(run, attempt, handle)
            return self._judge(run, exit_, timed_out)
        except Exception as exc:  # the last line of defence: still a result, and the process does not live on
            log.exception("run_internal_error", run_id=run.run_id, attempt=attempt)
            if handle is not None:
                with contextlib.suppress(Exception):
                    await handle.stop(0.0)
            message = printable(f"{type(exc).__name__}: {exc}")
            return RunStatus.FAILED, {}, RunError(type="internal_error", message=message)

    async def _prepare(self, run: PlannedRun, attempt: int, paths: RunPaths) -> RunRequest | RunError:
        globals_ = RunGlobals(
            run_uuid=run.run_id,
            run_name=f"{self.plan.name}-{run.index}",
            artifacts_path=str(paths.artifacts),
            run_outputs_path=str(paths.outputs),
            iteration=run.iteration,
        )
        try:
            await prepare_init(self._component, paths)
        except Exception as exc:  # git's own words (OSError), or a folder that cannot be made
            return RunError(type="init_failed", message=printable(str(exc)))
        try:
            rendered = render_run(self._component, run.params, globals_)
        except Exception as exc:  # validation renders every template, so this is a value no check foresaw
            return RunError(type="render_failed", message=printable(str(exc)))
        attempt_dir = paths.attempt(attempt)
        env = {
            **rendered.env,
            "BRIDGE_RUN_ID": run.run_id,
            "BRIDGE_OPERATION_ID": self.plan.operation_id,
            "BRIDGE_ATTEMPT": str(attempt),
            "BRIDGE_METRICS_FILE": str(attempt_dir / "metrics.jsonl"),
            "BRIDGE_OUTPUTS_DIR": str(paths.outputs),
        }
        cwd = self.plan.cwd / rendered.working_dir if rendered.working_dir else self.plan.cwd
        return RunRequest(
            run_id=run.run_id,
            attempt=attempt,
            argv=rendered.argv,
            env=env,
            cwd=cwd,
            attempt_dir=attempt_dir,
            outputs_dir=paths.outputs,
            resources=(self._component.run.container.resources if self._component.run.container else None),
        )

    async def _follow(self, run: PlannedRun, attempt: int, handle: RunHandle) -> tuple[RunExit, bool]:
        """Record the started attempt, then wait for its end under the timeout: its exit, and if it timed out."""
        self._handles[run.run_id] = handle
        self._steps.pop(run.run_id, None)
        try:
            # Its process group is in the ledger for reap_orphan, should this bridge be killed while it runs.
            await self._rt.ledger.dispatched(self.plan.operation_id, run.run_id, attempt, handle.dispatch_info)
            await self._listener.run_started(run.run_id, run.index, attempt)
            if run.run_id in self._stop_requests or self._stopping is not None:
                self._spawn(handle.stop(self._rt.stop_grace_s))
            waiting = asyncio.ensure_future(handle.wait())
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), timeout=self._timeout_s), False
            except TimeoutError:
                log.warning("run_timed_out", run_id=run.run_id, attempt=attempt, timeout_s=self._timeout_s)
                await handle.stop(self._rt.stop_grace_s)
                return await waiting, True
        finally:
            self._handles.pop(run.run_id, None)

    def _judge(
        self, run: PlannedRun, exit_: RunExit, timed_out: bool
    ) -> tuple[RunStatus, Mapping[str, Any], RunError | None]:
        outputs = dict(exit_.outputs)
        stop = self._stop_requests.get(run.run_id) or self._stopping
        if stop is not None and not timed_out:
            return RunStatus.STOPPED, outputs, stop
        if timed_out:
            return (
                RunStatus.FAILED,
                outputs,
                RunError(
                    type="timeout",
                    message=f"the run took longer than termination.timeout ({self._timeout_s:g} s)",
                ),
            )
        if exit_.start_error is not None:
            return RunStatus.FAILED, outputs, RunError(type="start_failed", message=exit_.start_error)
        if exit_.exit_code != 0:
            detail = f"; stderr: {exit_.stderr_tail[-500:]}" if exit_.stderr_tail else ""
            return (
                RunStatus.FAILED,
                outputs,
                RunError(type="exit_code", message=f"exited with {exit_.exit_code}{detail}"),
            )
        missing = [o.name for o in (self._component.outputs or []) if not o.is_optional and o.name not in outputs]
        if missing:
            # A run that ends well but reports nothing would leave the optimizer waiting for a number (katib#1795).
            return (
                RunStatus.FAILED,
                outputs,
                RunError(
                    type="missing_outputs",
                    message=f"the run exited 0 but never reported required outputs {missing}",
                ),
            )
        return RunStatus.SUCCEEDED, outputs, None

    # ---- metrics and early stopping -------------------------------------------------------------------

    def _on_metrics(self, run: PlannedRun, record: MetricRecord) -> None:
        if not record.metrics:
            return
        step = record.step if record.step is not None else self._steps.get(run.run_id, -1) + 1
        self._steps[run.run_id] = step
        event = ProgressEvent(
            study=self.plan.study,
            template=self.plan.template,
            operation_id=self.plan.operation_id,
            run_id=run.run_id,
            suggestion_id=run.suggestion_id,
            step=step,
            metrics=dict(record.metrics),
            at=_now(),
        )
        self._spawn(self._listener.run_progress(event))
        prune, stop_op = self._early.record_metrics(run.run_id, step, record.metrics)
        self._apply_verdicts(prune, stop_op)

    def _observe_result(self, result: RunResult) -> None:
        stop_op = self._early.record_result(result.run_id, result.status, result.outputs)
        self._apply_verdicts([], stop_op)

    def _apply_verdicts(self, prune: list[StopRun], stop_op: StopOperation | None) -> None:
        for verdict in prune:
            log.info("run_early_stopped", run_id=verdict.run_id, reason=verdict.reason)
            self.stop_run(verdict.run_id, verdict.reason, kind=StopReason.EARLY_STOPPED)
        if stop_op is not None and self._stopping is None:
            self._early_stop = stop_op
            log.info(
                "operation_early_stopped",
                operation_id=self.plan.operation_id,
                kind=stop_op.kind,
                reason=stop_op.reason,
            )
            self.stop(stop_op.reason, kind=StopReason.EARLY_STOPPED)

    # ---- results --------------------------------------------------------------------------------------

    def _result(
        self,
        run: PlannedRun,
        status: RunStatus,
        *,
        attempt: int,
        outputs: Mapping[str, Any] | None = None,
        error: RunError | None = None,
        cached: bool = False,
        started_at: datetime | None = None,
    ) -> RunResult:
        finished_at = _now()
        return RunResult(
            study=self.plan.study,
            template=self.plan.template,
            operation_id=self.plan.operation_id,
            run_id=run.run_id,
            suggestion_id=run.suggestion_id,
            iteration=run.iteration,
            index=run.index,
            params=run.given,
            status=status,
            outputs=dict(outputs or {}),
            attempt=max(attempt, 0),
            cached=cached,
            started_at=started_at,
            finished_at=finished_at,
            duration_s=round((finished_at - started_at).total_seconds(), 3) if started_at else None,
            error=error,
            metadata=dict(run.metadata),
        )
