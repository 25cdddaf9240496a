"""From a validated operation and its mapping values to the plan the scheduler runs: stable ids for everything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.contract.identity import operation_id_for, run_id_for
from bridge.polyaxon import V1Operation, expand_runs


@dataclass(frozen=True)
class PlannedRun:
    """One configuration of the mapping, with the id it keeps across retries, resumes and replicas.

    Intake makes one per suggestion (`index` its position in the message); a served operation batches runs of
    several messages and gives each its position in the operation (`dataclasses.replace`).
    """

    index: int  # the run's position in the operation's mapping values: results carry it
    run_id: str
    params: dict[str, Any]  # every input, typed, defaults filled: what templates render
    given: dict[str, Any]  # the params the user or optimizer gave (op params + its mapping dict), typed
    suggestion_id: str | None = None
    iteration: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what its result tells of the suggestion besides (`RunResult.warnings`)


@dataclass(frozen=True)
class OperationPlan:
    """An operation ready to schedule."""

    operation_id: str
    operation: V1Operation
    runs: list[PlannedRun]
    cwd: Path  # where commands run unless the component sets workingDir
    study: str | None = None
    template: str | None = None
    concurrency: int | None = None  # overrides matrix.concurrency (`bridge run --concurrency`)

    @property
    def name(self) -> str:
        """The operation's name, for people."""
        return self.operation.name or self.template or self.operation_id[:12]


def plan_local(operation: V1Operation, *, source: str, cwd: Path, concurrency: int | None = None) -> OperationPlan:
    """The plan for `bridge run -f`: the file's own mapping values (a non-mapping operation is one run)."""
    values: list[dict[str, Any]] = (
        [dict(v) for v in operation.matrix.values]
        if operation.matrix is not None and operation.matrix.values is not None
        else [{}]
    )
    typed = expand_runs(operation, values, source=source)
    operation_id = operation_id_for(operation, values)
    op_params = set(operation.params or {})
    runs = [
        PlannedRun(
            index=i,
            run_id=run_id_for(operation_id, str(i)),
            params=params,
            given={k: params[k] for k in params if k in op_params or k in values[i]},
        )
        for i, params in enumerate(typed)
    ]
    return OperationPlan(operation_id=operation_id, operation=operation, runs=runs, cwd=cwd, concurrency=concurrency)
