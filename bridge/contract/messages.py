"""The messages on the bridge's Kafka topics (models only: no parsing, no I/O).

Every message is UTF-8 JSON whose `schema` field names its schema and version (CONTRACT.md section 3), as
registered in `bridge.contract.versions`. Results and progress events live in `bridge.contract.results`, dead letters in
`bridge.contract.dead_letters`; this module holds what the optimizer, the dashboards and the operators exchange with the
bridge, and `MessageError`, what `bridge.contract.codec` raises for bytes that are not one of them: a stable `type`, a
message and the field path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.contract.identity import suggestion_id
from bridge.contract.limits import LimitType
from bridge.contract.results import Frozen, RunResult, Written
from bridge.errors import InvalidInput, Problem

SUGGESTION_SCHEMA: Final = "bridge.suggestion/v1"
OPERATION_SCHEMA: Final = "bridge.operation/v1"
DEADLETTER_SCHEMA: Final = "bridge.deadletter/v1"
CONTROL_SCHEMA: Final = "bridge.control/v1"
LEDGER_SCHEMA: Final = "bridge.ledger/v1"
OWNER_SCHEMA: Final = "bridge.owner/v1"

MAX_SUGGESTIONS = 1024
"""The most suggestions one message may carry; the service may set a lower cap (`max_suggestions`)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""Study, template and id names: safe in a path, a metric label and a Kafka key."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]

MessageErrorType = Literal["invalid_json", "unknown_schema", "invalid_message", "message_too_large"] | LimitType


class MessageError(InvalidInput):
    """A Kafka record that is not a valid message; it goes to the dead-letter topic as it is.

    `type` is a stable word, `field` the path of the offending value (`suggestions[1].params.epochs`; None
    when the whole message is at fault) and `problems` every problem found, the first being `field`/`message`.
    """

    def __init__(
        self,
        type: MessageErrorType,
        message: str,
        field: str | None = None,
        problems: Sequence[Problem] = (),
    ) -> None:
        super().__init__(message)
        self.type: MessageErrorType = type
        self.message = message
        self.field = field
        self.problems = tuple(problems) or (Problem(field or "", message),)

    def __str__(self) -> str:
        return f"{self.type}: {self.field}: {self.message}" if self.field else f"{self.type}: {self.message}"


def field_path(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a path: `("suggestions", 1, "params")` -> `suggestions[1].params`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for "the key of the dict entry before", not a key itself
            path += f".{part}" if path else part
    return path


class TopicMessage(Frozen):
    """The base of every message on a topic: frozen, no unknown fields, `schema` spelled as on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        """The wire form, with `schema` spelled as on the topic."""
        return self.model_dump_json(by_alias=True)


class WrittenMessage(TopicMessage):
    """The base of a message the bridge writes for others to read: unknown fields are ignored (`Written`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Suggestion(Frozen):
    """One configuration the optimizer wants run: its params, and an id when the optimizer names it."""

    id: Name | None = None
    params: dict[str, Any]


class SuggestionMessage(TopicMessage):
    """Configurations to run for one study and template (`bridge.suggestion/v1`), optimizer to bridge."""

    schema_: Literal["bridge.suggestion/v1"] = Field(default=SUGGESTION_SCHEMA, alias="schema")
    study: Name
    template: Name = Field(
        description="The operation registered in the bridge's config; with `operation`, the name given to it."
    )
    iteration: int | None = Field(default=None, ge=0)
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Op-level params for every suggestion; a suggestion's own params win.",
    )
    suggestions: list[Suggestion] = Field(min_length=1, max_length=MAX_SUGGESTIONS)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Copied into every result, untouched.")
    operation: dict[str, Any] | None = Field(
        default=None,
        description="A full inline Polyaxon operation, refused unless the config allows inline operations.",
    )

    @field_validator("suggestions")
    @classmethod
    def _capped_and_unique(cls, value: list[Suggestion], info: ValidationInfo) -> list[Suggestion]:
        cap = (info.context or {}).get("max_suggestions", MAX_SUGGESTIONS)
        if len(value) > cap:
            raise ValueError(f"at most {cap} suggestions in one message, got {len(value)}")
        seen: dict[str, int] = {}
        for index, suggestion in enumerate(value):
            if suggestion.id is None:
                continue
            if suggestion.id in seen:
                raise ValueError(
                    f"suggestions[{index}] has the id {suggestion.id!r}"
                    f" of suggestions[{seen[suggestion.id]}]; ids must be unique in a message"
                )
            seen[suggestion.id] = index
        return value

    def run_params(self, index: int) -> dict[str, Any]:
        """The params of the run for suggestion `index`: op-level params under the suggestion's own."""
        return {**self.params, **self.suggestions[index].params}

    def suggestion_ids(self) -> list[str]:
        """Each suggestion's id: its own, or the deterministic one of `bridge.contract.identity.suggestion_id`."""
        return [
            s.id or suggestion_id(self.study, self.template, self.iteration, i, self.run_params(i))
            for i, s in enumerate(self.suggestions)
        ]


class OperationCounts(Written):
    """How many of an operation's runs are in each state; `cached` runs are not counted as `succeeded`."""

    pending: int = Field(default=0, ge=0)
    running: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    stopped: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    cached: int = Field(default=0, ge=0)


class EarlyStop(Written):
    """Why an operation's early stopping fired: the policy's kind and a sentence for people."""

    kind: Literal["failure_early_stopping", "metric_early_stopping"]
    reason: str


class _OperationEventBase(WrittenMessage):
    schema_: Literal["bridge.operation/v1"] = Field(default=OPERATION_SCHEMA, alias="schema")
    study: Name
    template: Name
    operation_id: Name
    at: AwareDatetime


class OperationCreated(_OperationEventBase):
    """The bridge built a mapping operation (`bridge.operation/v1`, event `created`): the full operation."""

    event: Literal["created"] = "created"
    operation: dict[str, Any]


class OperationProgress(_OperationEventBase):
    """An operation's runs changed state (`bridge.operation/v1`, event `progress`)."""

    event: Literal["progress"] = "progress"
    counts: OperationCounts


class OperationFinished(_OperationEventBase):
    """All of an operation's runs ended (`bridge.operation/v1`, event `finished`), maybe by early stopping."""

    event: Literal["finished"] = "finished"
    counts: OperationCounts
    early_stopping: EarlyStop | None = None


OperationEvent: TypeAlias = Annotated[
    OperationCreated | OperationProgress | OperationFinished, Field(discriminator="event")
]
"""Any `bridge.operation/v1` message; `event` tells which."""

_OPERATION_EVENTS: dict[str, type[_OperationEventBase]] = {
    "created": OperationCreated,
    "progress": OperationProgress,
    "finished": OperationFinished,
}


class ControlMessage(TopicMessage):
    """Stop a run or a whole operation from outside (`bridge.control/v1`).

    `stop_run` names its run by `run_id` or by `suggestion_id`; `stop_operation` names `operation_id`.
    """

    schema_: Literal["bridge.control/v1"] = Field(default=CONTROL_SCHEMA, alias="schema")
    action: Literal["stop_run", "stop_operation"]
    study: Name
    run_id: Name | None = None
    operation_id: Name | None = None
    suggestion_id: Name | None = None
    reason: str | None = Field(default=None, max_length=1024)
    token: str | None = Field(
        default=None, max_length=1024, description="The bridge's `control.token`, when it is configured.", repr=False
    )

    @model_validator(mode="after")
    def _one_target(self) -> ControlMessage:
        given = [n for n in ("run_id", "operation_id", "suggestion_id") if getattr(self, n) is not None]
        wanted = ["operation_id"] if self.action == "stop_operation" else ["run_id", "suggestion_id"]
        if len(given) != 1 or given[0] not in wanted:
            raise ValueError(f"{self.action} takes exactly one of {' or '.join(wanted)}, got {given or 'none'}")
        return self


class OwnerMarker(TopicMessage):
    """Who holds a ledger partition (`bridge.owner/v1`, key `~owner`, in the ledger topic): `acquired` when a
    replica takes the input partition of the same number, `released` when it lets it go cleanly. A next owner that
    finds `acquired` counts a first attempt as made for every run the dead owner could have started
    (`bridge/service/ledger/lease.py`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["bridge.owner/v1"] = Field(default=OWNER_SCHEMA, alias="schema")
    state: Literal["acquired", "released"]
    owner: str = Field(description="The host of the replica that wrote it.")
    at: float = Field(description="When it was written, in seconds since the epoch.")
    claim: int | None = Field(
        default=None,
        ge=0,
        description="Input offsets below it are claimed: their runs may start before their ledger records commit.",
    )


class LedgerRecord(Frozen):
    """One state change of one run (`bridge.ledger/v1`); the key is the run id."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["bridge.ledger/v1"] = Field(default=LEDGER_SCHEMA, alias="schema")
    run_id: str
    state: Literal["received", "dispatched", "finished"]
    study: str
    template: str
    suggestion_id: str
    attempt: int = Field(default=0, ge=0, description="The attempt dispatched (0 before any).")
    iteration: int | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="Every input, typed, defaults filled.")
    given: dict[str, Any] = Field(default_factory=dict, description="The params the message gave.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    operation: dict[str, Any] | None = Field(default=None, description="The inline operation, if it was one.")
    status: str | None = Field(default=None, description="The final status, when finished.")
    fingerprint: str | None = Field(
        default=None, description="A hash of the given params: the same id with other params is a conflict."
    )
    dispatch: dict[str, Any] | None = Field(
        default=None,
        description="What the executor told of the dispatched attempt (for local runs, its process group), so a"
        " later owner can stop what a killed bridge left running.",
    )
    result: dict[str, Any] | None = Field(
        default=None, description="The final result, when finished: a suggestion sent again gets a copy of it."
    )

    def to_bytes(self) -> bytes:
        """The record's value on the topic."""
        return self.model_dump_json(by_alias=True).encode()

    def with_state(self, state: Literal["received", "dispatched", "finished"], **changes: Any) -> LedgerRecord:
        """The same run in another state."""
        return self.model_copy(update={"state": state, **changes})

    @classmethod
    def finished_from(cls, received: LedgerRecord, result: RunResult) -> LedgerRecord:
        """The `finished` record of a result (params dropped: a finished run is never run again)."""
        return received.model_copy(
            update={
                "state": "finished",
                "attempt": result.attempt,
                "status": result.status.value,
                "params": {},
                "given": {},
                "metadata": {},
                "operation": None,
                "result": result.model_dump(mode="json", by_alias=True),
            }
        )
