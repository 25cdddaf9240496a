"""The one scheduler of an operation's life, shared by `bridge run` and `bridge serve`.

For each planned run: reuse its finished result from the ledger (resume), or answer it from the cache, or wait
for an identical run already in flight, or run it: under the operation's concurrency and the executor's global
cap, with `termination.timeout` per attempt and up to `termination.maxRetries` retries, while early stopping
watches every metric and every result. Stopping (early stopping, an interrupt, a control message) signals
running attempts (SIGTERM, then SIGKILL after a grace period) and skips runs not yet started.
The request one attempt runs, the verdict of its exit and the run's result are built in `bridge.engine.attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.contract.limits import printable
from bridge.contract.results import ProgressEvent, RunError, RunResult, RunStatus, StopReason
from bridge.engine.attempts import Verdict, judge_exit, prepare_spec, run_result
from bridge.engine.cache import cache_key, run_shape
from bridge.engine.early_stopping import EarlyStopping, StopOperation, StopRun
from bridge.engine.plan import OperationPlan, PlannedRun
from bridge.engine.ports import LedgerEntry, OperationListener
from bridge.engine.runtime import Runtime
from bridge.errors import HandedOver
from bridge.executors.base import LogLine, MetricRecord, RunEvent, RunExit, RunHandle
from bridge.logs import get_logger

log = get_logger(__name__)

LOST_ATTEMPTS_RETRIED = 3  # a node dying is no fault of the run: retried beyond maxRetries, this many times


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
        reattached: RunHandle | None = None
        if previous is not None and previous.result is None and previous.reattach_info:
            # An earlier bridge process started this attempt: follow it if it still runs (or has ended) where it
            # was placed, instead of running it again; the executor stops whatever it cannot follow.
            reattached = await self._rt.executor.reattach(
                run.run_id, previous.reattach_info, lambda event: self._on_event(run, event)
            )
        if reattached is not None:
            log.info("run_reattached", run_id=run.run_id, attempt=previous.attempt if previous else 0)
            first_attempt = previous.attempt if previous is not None else 1
        else:
            first_attempt = (previous.attempt if previous is not None else 0) + 1
        result = await self._resolve(run, first_attempt, reattached)
        if result.run_id not in self._recorded:
            await self._record(result)
        self._observe_result(result)
        await self._listener.run_finished(result)
        return result

    async def _resolve(self, run: PlannedRun, first_attempt: int, reattached: RunHandle | None) -> RunResult:
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
                    return run_result(
                        self.plan, run, RunStatus.SUCCEEDED, attempt=0, outputs=first.outputs, cached=True
                    )
            future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
            self._rt.inflight[key] = future
            try:
                result = await self._execute(run, first_attempt, reattached)
            finally:
                if self._rt.inflight.get(key) is future:
                    del self._rt.inflight[key]
            future.set_result(result)
            if result.status is RunStatus.SUCCEEDED and self._rt.cache is not None:
                self._rt.cache.put(key, result.outputs, run.run_id)
            return result
        return await self._execute(run, first_attempt, reattached)

    def _cache_hit(self, run: PlannedRun, key: str) -> RunResult | None:
        assert self._rt.cache is not None
        entry = self._rt.cache.get(key, self._cache_ttl)
        if entry is None:
            return None
        log.info("run_cache_hit", run_id=run.run_id, from_run_id=entry.run_id)
        return run_result(self.plan, run, RunStatus.SUCCEEDED, attempt=0, outputs=entry.outputs, cached=True)

    async def _record(self, result: RunResult) -> None:
        interrupted = self._interrupted and result.status in (RunStatus.STOPPED, RunStatus.SKIPPED)
        await self._rt.ledger.finished(self.plan.operation_id, result, interrupted=interrupted)
        self._recorded.add(result.run_id)

    async def _execute(self, run: PlannedRun, first_attempt: int, reattached: RunHandle | None) -> RunResult:
        if (skip := self._skip_reason(run)) is not None and reattached is None:
            return run_result(self.plan, run, RunStatus.SKIPPED, attempt=first_attempt - 1, error=skip)
        async with self._op_slots, self._rt.slots:
            result = await self._attempts(run, first_attempt, reattached)
            # Durable before the slot frees: once the next run starts, a kill -9 never re-runs this one.
            await self._record(result)
            return result

    async def _attempts(self, run: PlannedRun, first_attempt: int, reattached: RunHandle | None) -> RunResult:
        attempt = first_attempt
        started_at = _now()
        lost = 0
        while True:
            if reattached is not None:
                # Already running: followed (and stopped, if stops were asked meanwhile) like one just started.
                status, outputs, error = await self._followed(run, attempt, reattached, record_start=False)
                reattached = None
            elif (skip := self._skip_reason(run)) is not None:
                status = RunStatus.SKIPPED if attempt == first_attempt else RunStatus.STOPPED
                return run_result(self.plan, run, status, attempt=attempt - 1, error=skip, started_at=started_at)
            else:
                status, outputs, error = await self._attempt(run, attempt)
            was_lost = error is not None and error.type == "node_lost" and lost < LOST_ATTEMPTS_RETRIED
            lost += was_lost
            retry = status is RunStatus.FAILED and (was_lost or attempt - first_attempt - lost < self._max_retries)
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
            return run_result(
                self.plan, run, status, attempt=attempt, outputs=outputs, error=error, started_at=started_at
            )

    def _skip_reason(self, run: PlannedRun) -> RunError | None:
        return self._stopping or self._stop_requests.get(run.run_id)

    async def _attempt(self, run: PlannedRun, attempt: int) -> Verdict:
        """One attempt, total: whatever goes wrong ends it with a failed status and why, never an exception
        (one would leave the run without a result and its operation waiting for it forever)."""
        try:
            spec = prepare_spec(self.plan, self._component, run, attempt)
            if isinstance(spec, RunError):
                return RunStatus.FAILED, {}, spec
            # Durable before the executor is asked, so a kill -9 at any moment counts this attempt.
            try:
                await self._rt.ledger.attempt_starting(self.plan.operation_id, run.run_id, attempt)
            except HandedOver as exc:  # another replica runs it now: starting it here would run it twice
                log.info("run_handed_over_before_start", run_id=run.run_id, attempt=attempt)
                return RunStatus.STOPPED, {}, RunError(type=StopReason.INTERRUPTED, message=str(exc))
            try:
                handle = await self._rt.executor.start(spec, lambda event: self._on_event(run, event))
            except Exception as exc:  # an executor's own start error would otherwise escape as an internal one
                log.warning("run_start_failed", run_id=run.run_id, attempt=attempt, error=printable(str(exc)))
                return RunStatus.FAILED, {}, RunError(type="start_failed", message=printable(str(exc)))
        except Exception as exc:  # the last line of defence: still a result
            log.exception("run_internal_error", run_id=run.run_id, attempt=attempt)
            return (
                RunStatus.FAILED,
                {},
                RunError(type="internal_error", message=printable(f"{type(exc).__name__}: {exc}")),
            )
        return await self._followed(run, attempt, handle, record_start=True)

    async def _followed(self, run: PlannedRun, attempt: int, handle: RunHandle, *, record_start: bool) -> Verdict:
        """Follow a started attempt to its verdict, total like `_attempt`; the process does not live on."""
        try:
            exit_, timed_out = await self._follow(run, attempt, handle, record_start=record_start)
            return judge_exit(
                exit_,
                timed_out,
                stop=self._stop_requests.get(run.run_id) or self._stopping,
                timeout_s=self._timeout_s,
                component=self._component,
            )
        except Exception as exc:  # the last line of defence: still a result, and the process does not live on
            log.exception("run_internal_error", run_id=run.run_id, attempt=attempt)
            with contextlib.suppress(Exception):
                await handle.stop(0.0)
            message = printable(f"{type(exc).__name__}: {exc}")
            return RunStatus.FAILED, {}, RunError(type="internal_error", message=message)

    async def _follow(
        self, run: PlannedRun, attempt: int, handle: RunHandle, *, record_start: bool
    ) -> tuple[RunExit, bool]:
        """Record the started attempt, then wait for its end under the timeout: its exit, and if it timed out."""
        self._handles[run.run_id] = handle
        self._steps.pop(run.run_id, None)
        try:
            if record_start:
                # Where it runs and how to find it again, should this bridge be killed while it runs.
                await self._rt.ledger.attempt_started(
                    self.plan.operation_id, run.run_id, attempt, handle.node_id, handle.reattach_info
                )
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

    # ---- metrics and early stopping -------------------------------------------------------------------

    def _on_event(self, run: PlannedRun, event: RunEvent) -> None:
        if isinstance(event, LogLine):
            return  # kept by the executor where `bridge logs` reads them; nothing here decides on a log line
        self._on_metrics(run, event)

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
