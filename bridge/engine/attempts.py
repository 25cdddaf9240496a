"""One attempt of one run, the parts that need no scheduler: what it runs, how its exit is judged, its result.

The scheduler (`bridge.engine.scheduler`) dispatches, starts and waits; this module turns the run into the spec the
executor starts (the executor renders it for the place it chooses), turns the attempt's exit into a status and
why, and writes the run's one final result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bridge.contract.limits import printable
from bridge.contract.results import RunError, RunResult, RunStatus
from bridge.engine.plan import OperationPlan, PlannedRun
from bridge.executors.base import RunCommand, RunExit, RunPlace, RunSpec
from bridge.executors.workspace import git_init_steps
from bridge.polyaxon import RunGlobals, V1Component, render_run

Verdict = tuple[RunStatus, Mapping[str, Any], RunError | None]
"""How an attempt ended: its status, its outputs and, unless it succeeded, why."""


def _now() -> datetime:
    return datetime.now(UTC)


def prepare_spec(plan: OperationPlan, component: V1Component, run: PlannedRun, attempt: int) -> RunSpec | RunError:
    """What the executor is asked to start for `attempt` of `run`, or why it cannot be.

    The command is rendered once here, for a place that does not exist, only to find a value no check foresaw
    before the attempt counts; the executor renders it again for the place it chooses (pure, so it then
    succeeds)."""
    render = partial(_render, plan, component, run, attempt)
    try:
        render(RunPlace(node_id="", artifacts_path="/", outputs_path="/"))
    except Exception as exc:  # validation renders every template, so this is a value no check foresaw
        return RunError(type="render_failed", message=printable(str(exc)))
    return RunSpec(
        run_id=run.run_id,
        attempt=attempt,
        operation_id=plan.operation_id,
        render=render,
        init=git_init_steps(component),
        resources=(component.run.container.resources if component.run.container else None),
        source_dir=str(plan.cwd),
    )


def _render(plan: OperationPlan, component: V1Component, run: PlannedRun, attempt: int, place: RunPlace) -> RunCommand:
    globals_ = RunGlobals(
        run_uuid=run.run_id,
        run_name=f"{plan.name}-{run.index}",
        artifacts_path=place.artifacts_path,
        run_outputs_path=place.outputs_path,
        iteration=run.iteration,
    )
    rendered = render_run(component, run.params, globals_)
    env = {
        **rendered.env,
        "BRIDGE_RUN_ID": run.run_id,
        "BRIDGE_OPERATION_ID": plan.operation_id,
        "BRIDGE_ATTEMPT": str(attempt),
    }
    return RunCommand(argv=rendered.argv, env=env, working_dir=rendered.working_dir or None)


def judge_exit(
    exit_: RunExit,
    timed_out: bool,
    *,
    stop: RunError | None,
    timeout_s: float | None,
    component: V1Component,
) -> Verdict:
    """The verdict of an attempt that ran: `stop` is the stop asked of it, if any; `timed_out` wins over it."""
    outputs = dict(exit_.outputs)
    if stop is not None and not timed_out:
        return RunStatus.STOPPED, outputs, stop
    if timed_out:
        return (
            RunStatus.FAILED,
            outputs,
            RunError(
                type="timeout",
                message=f"the run took longer than termination.timeout ({timeout_s:g} s)",
            ),
        )
    if exit_.lost or exit_.start_error is not None:
        kind = "node_lost" if exit_.lost else exit_.start_error_type
        return RunStatus.FAILED, outputs, RunError(type=kind, message=exit_.start_error or "its node went away")
    if exit_.exit_code != 0:
        detail = f"; stderr: {exit_.stderr_tail[-500:]}" if exit_.stderr_tail else ""
        return (
            RunStatus.FAILED,
            outputs,
            RunError(type="exit_code", message=f"exited with {exit_.exit_code}{detail}"),
        )
    missing = [o.name for o in (component.outputs or []) if not o.is_optional and o.name not in outputs]
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


def run_result(
    plan: OperationPlan,
    run: PlannedRun,
    status: RunStatus,
    *,
    attempt: int,
    outputs: Mapping[str, Any] | None = None,
    error: RunError | None = None,
    cached: bool = False,
    started_at: datetime | None = None,
) -> RunResult:
    """The run's one final result, finished now."""
    finished_at = _now()
    return RunResult(
        study=plan.study,
        template=plan.template,
        operation_id=plan.operation_id,
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
        warnings=list(run.warnings),
    )
