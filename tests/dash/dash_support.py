"""Messages for the dash's tests, as the bridge writes them, and the hostile strings a topic writer could put in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from bridge.contract.messages import OperationCounts, OperationCreated, OperationFinished, OperationProgress
from bridge.contract.results import ProgressEvent, RunError, RunResult, RunStatus

HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def result(study: str, n: int, *, loss: float | None = None, status: str = "succeeded", **fields: Any) -> RunResult:
    """The final result of run `n` of `study`, finished n seconds after T0."""
    outputs = {} if loss is None else {"loss": loss}
    data: dict[str, Any] = {
        "study": study,
        "template": "job",
        "operation_id": "op-1",
        "run_id": f"{study}-run-{n}",
        "suggestion_id": f"s-{n}",
        "index": n,
        "params": {"lr": 0.1 * (n + 1), "opt": "sgd" if n % 2 else "adam"},
        "status": RunStatus(status),
        "outputs": outputs,
        "finished_at": T0 + timedelta(seconds=n),
        "duration_s": 1.5,
    }
    data.update(fields)
    return RunResult(**data)


def progress(study: str, n: int, step: int, loss: float) -> ProgressEvent:
    return ProgressEvent(
        study=study, operation_id="op-1", run_id=f"{study}-run-{n}", step=step, metrics={"loss": loss}, at=T0
    )


def created(study: str, operation: dict[str, Any] | None = None, op: str = "op-1") -> OperationCreated:
    return OperationCreated(study=study, template="job", operation_id=op, at=T0, operation=operation or {})


def running(study: str, n: int, op: str = "op-1") -> OperationProgress:
    return OperationProgress(study=study, template="job", operation_id=op, at=T0, counts=OperationCounts(running=n))


def finished(study: str, op: str = "op-1") -> OperationFinished:
    return OperationFinished(study=study, template="job", operation_id=op, at=T0, counts=OperationCounts())


def early_stop_rule(metric: str = "loss", optimization: str = "minimize") -> dict[str, Any]:
    return {
        "matrix": {
            "kind": "mapping",
            "earlyStopping": [
                {"kind": "metric_early_stopping", "metric": metric, "value": 0.0, "optimization": optimization}
            ],
        }
    }


def dead_letter(value: bytes, *, field: str | None, kind: str = "invalid_message", at: datetime = T0) -> DeadLetter:
    return DeadLetter.of_record(
        topic="bridge.suggestions",
        partition=2,
        offset=41,
        key=HOSTILE.encode(),
        value=value,
        timestamp_ms=None,
        error=DeadLetterError(type=kind, message=f"bad {HOSTILE}", field=field),
        at=at,
    )


def refused(study: str, n: int) -> RunResult:
    return result(
        study,
        n,
        status="failed",
        operation_id="",
        attempt=0,
        error=RunError(type="invalid_params", message="epochs: not an int", field="suggestions[0].params.epochs"),
    )
