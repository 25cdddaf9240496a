"""The answers the bridge gives without running anything: a refused suggestion's failed final result, and the
`finished` ledger record that makes it known, so a resent copy is answered with a replay instead of again.

Pure: the service publishes both in the transaction that commits the suggestion's offset (`service/records.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.identity import conflict_run_id
from bridge.contract.messages import LedgerRecord
from bridge.contract.results import NO_OPERATION, RunError, RunResult, RunStatus
from bridge.engine.plan import PlannedRun
from bridge.service.intake import Refused


def conflict(run: PlannedRun | Refused, position: int, given_fingerprint: str) -> Refused:
    """A suggestion whose id was seen before with other params, refused as `conflicting_suggestion` under its
    own run id (`identity.conflict_run_id`): the first params' run keeps its one final result."""
    given = run.given
    return Refused(
        index=position,
        run_id=conflict_run_id(run.run_id, given_fingerprint),
        suggestion_id=run.suggestion_id or "",
        given=dict(given),
        error=DeadLetterError(
            type="conflicting_suggestion",
            field=f"suggestions[{position}].id",
            message=f"suggestion `{run.suggestion_id}` (run {run.run_id}) was seen before with other params;"
            " a new configuration needs a new id",
        ),
        iteration=run.iteration,
        metadata=run.metadata,
        warnings=tuple(run.warnings),
    )


def refusal_result(refused: Refused, study: str, template: str, max_bytes: int) -> RunResult:
    """The failed final result that answers a refused suggestion: `error` says why and names the field. It echoes
    the params and metadata as sent, unless they would make it larger than half of `max_bytes` (its ledger record
    carries it too): then neither, for the reason matters more (the dead letter keeps the original bytes)."""
    result = _refusal_result(refused, study, template)
    if len(result.to_json().encode()) > max_bytes // 2:
        result = result.model_copy(update={"params": {}, "metadata": {}})
    return result


def _refusal_result(refused: Refused, study: str, template: str) -> RunResult:
    error = refused.error.bounded()
    return RunResult(
        study=study,
        template=template,
        operation_id=NO_OPERATION,
        run_id=refused.run_id,
        suggestion_id=refused.suggestion_id,
        iteration=refused.iteration,
        index=refused.index,
        params=refused.given,
        status=RunStatus.FAILED,
        attempt=0,
        finished_at=datetime.now(UTC),
        error=RunError(type=error.type, message=error.message, field=error.field),
        metadata=dict(refused.metadata),
        warnings=list(refused.warnings),
    )


def refusal_record(refused: Refused, result: RunResult, study: str, template: str, fingerprint: str) -> LedgerRecord:
    """The `finished` ledger record of a refusal: it carries the answer (a resend gets a copy) and the params'
    fingerprint (the same id with other params is a conflict)."""
    return LedgerRecord(
        run_id=refused.run_id,
        state="finished",
        study=study,
        template=template,
        suggestion_id=refused.suggestion_id,
        iteration=refused.iteration,
        status=result.status.value,
        fingerprint=fingerprint,
        result=result.model_dump(mode="json", by_alias=True),
    )
