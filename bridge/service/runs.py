"""What the service keeps of each run it owns, the `received` ledger record that makes it durable, and a result
sized to fit what the broker takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.contract.messages import LedgerRecord
from bridge.contract.results import RunError, RunResult, RunStatus
from bridge.engine.plan import PlannedRun
from bridge.kafka.offsets import Partition
from bridge.polyaxon import V1Operation

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunItem:
    """One run this replica owns: what it runs, where it came from, and its ledger record."""

    run: PlannedRun
    operation: V1Operation
    source: Partition
    record: LedgerRecord
    offset: int | None = None  # the suggestions record it completes; None for a run reconciled from the ledger

    @property
    def study(self) -> str:
        return self.record.study

    @property
    def template(self) -> str:
        return self.record.template


def received_record(
    run: PlannedRun,
    study: str,
    template: str,
    inline: Mapping[str, Any] | None,
    fingerprint: str,
    *,
    attempt: int = 0,
) -> LedgerRecord:
    """The `received` ledger record of an accepted suggestion: everything needed to run it again; `attempt` 1 when
    a dead previous owner may have made the first attempt unrecorded (`lease.py`)."""
    return LedgerRecord(
        run_id=run.run_id,
        state="received",
        study=study,
        template=template,
        suggestion_id=run.suggestion_id or "",
        iteration=run.iteration,
        params=run.params,
        given=run.given,
        metadata=dict(run.metadata),
        operation=dict(inline) if inline is not None else None,
        fingerprint=fingerprint,
        attempt=attempt,
    )


def fit_result(result: RunResult, max_bytes: int) -> RunResult:
    """The result, or, when it would not fit in a record the broker takes (its ledger record carries it too),
    the same result failed with `result_too_large` and without its outputs: an answer, never a stalled partition."""
    size = len(result.to_json().encode())
    if size <= max_bytes // 2:
        return result
    log.error("result_too_large", run_id=result.run_id, bytes=size, limit=max_bytes // 2)
    error = RunError(
        type="result_too_large",
        message=f"the result is {size} bytes, more than the {max_bytes // 2} the bridge publishes; outputs dropped",
    )
    return result.model_copy(update={"status": RunStatus.FAILED, "outputs": {}, "error": error})
