"""The data that flows through the bridge: runs, their results and progress. Frozen, no I/O."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

RESULT_SCHEMA: Final = "bridge.result/v1"
PROGRESS_SCHEMA: Final = "bridge.progress/v1"


class Frozen(BaseModel):
    """Base of every message: immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Written(Frozen):
    """Base of what the bridge writes for others to read (results, progress, operation events, dead letters):
    immutable, and a reader ignores the fields it does not know, so a newer bridge may add an optional field to a
    v1 message and older readers still read it. What the bridge takes in (suggestions, control messages, its
    ledger) stays strict: `Frozen`."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _empty(value: object) -> bool:
    return not value


class RunStatus(StrEnum):
    """A run's final status, as the optimizer sees it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    SKIPPED = "skipped"


class StopReason(StrEnum):
    """Why a run was stopped or skipped from outside its own process: its result's `error.type`.

    Only `INTERRUPTED` is not an answer: the bridge itself is going away (an interrupt of `bridge run`, a
    shutdown of `serve` past its grace), so the run is not finished for the ledger and runs again on resume or
    on the partition's next owner. The other two are final results like any other.
    """

    STOPPED = "stopped"  # someone asked: a control message, an operator
    EARLY_STOPPED = "early_stopped"  # an early-stopping rule fired, for this run or the whole operation
    INTERRUPTED = "interrupted"  # the bridge is going away: run it again, do not publish it


class RunError(Written):
    """Why a run did not succeed: `type` is a stable word a program can branch on."""

    type: str
    message: str
    field: str | None = Field(
        default=None,
        description="For a refused suggestion (invalid_params, conflicting_suggestion, ...): the field path at fault,"
        " e.g. suggestions[1].params.epochs.",
    )


NO_OPERATION = ""
"""The `operation_id` of a refused suggestion's answer: no operation was built for it."""


class RunResult(Written):
    """The one final result of a run (`bridge.result/v1`)."""

    schema_: Literal["bridge.result/v1"] = Field(default=RESULT_SCHEMA, alias="schema")
    study: str | None = None
    template: str | None = None
    operation_id: str = Field(description="The operation that ran it; empty for a refused suggestion (nothing ran).")
    run_id: str
    suggestion_id: str | None = None
    iteration: int | None = None
    index: int = Field(ge=0, description="The run's position in the operation's mapping values.")
    params: dict[str, Any]
    status: RunStatus
    outputs: dict[str, Any] = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=0, description="How many times the run was started; 0 when it never was.")
    cached: bool = False
    replayed: bool = Field(
        default=False,
        description="A copy of a result published before, sent again for a suggestion sent again; consumers that"
        " count results per run_id skip it.",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: RunError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(
        default_factory=list,
        exclude_if=_empty,
        description="What the bridge noticed about the suggestion without refusing it for that, one sentence each,"
        " e.g. a param its template does not declare, with the closest declared name. Left out when there is none.",
    )

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def to_json(self) -> str:
        """The wire form, with `schema` spelled as on the topic."""
        return self.model_dump_json(by_alias=True)


class ProgressEvent(Written):
    """An intermediate metric a run reported (`bridge.progress/v1`)."""

    schema_: Literal["bridge.progress/v1"] = Field(default=PROGRESS_SCHEMA, alias="schema")
    study: str | None = None
    template: str | None = None
    operation_id: str
    run_id: str
    suggestion_id: str | None = None
    step: int | None = None
    metrics: dict[str, float]
    at: datetime

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
