"""Every message schema the bridge knows, by family and version: the one place a new version is added.

A schema's name is `<family>/v<version>` (`bridge.suggestion/v1`). Parsing (`codec.py`), the JSON Schemas and the
AsyncAPI document (`jsonschema.py`), the client and `bridge tail` all look names up here; none spells one. A v2 of a
message the bridge writes is a new model in `messages.py` and one more line below (keep v1 while producers send
it). A v2 of what it reads, a suggestion, also touches its reading: `codec.parse_suggestion` (v1 only),
`jsonschema.py` (what the bridge reads), and `service/intake.py` (typed on `SuggestionMessage`, and rebuilding one
from a ledger record).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from bridge.contract.dead_letters import DeadLetter
from bridge.contract.messages import (
    CONTROL_SCHEMA,
    DEADLETTER_SCHEMA,
    LEDGER_SCHEMA,
    OPERATION_SCHEMA,
    OWNER_SCHEMA,
    SUGGESTION_SCHEMA,
    ControlMessage,
    LedgerRecord,
    OperationCreated,
    OperationEvent,
    OperationFinished,
    OperationProgress,
    OwnerMarker,
    SuggestionMessage,
)
from bridge.contract.results import PROGRESS_SCHEMA, RESULT_SCHEMA, ProgressEvent, RunResult

Message: TypeAlias = (
    SuggestionMessage
    | RunResult
    | ProgressEvent
    | OperationCreated
    | OperationProgress
    | OperationFinished
    | DeadLetter
    | ControlMessage
    | LedgerRecord
    | OwnerMarker
)
"""Any message of any topic."""

MESSAGE_TYPES: Final[Mapping[str, Any]] = MappingProxyType(
    {
        SUGGESTION_SCHEMA: SuggestionMessage,
        RESULT_SCHEMA: RunResult,
        PROGRESS_SCHEMA: ProgressEvent,
        OPERATION_SCHEMA: OperationEvent,
        DEADLETTER_SCHEMA: DeadLetter,
        CONTROL_SCHEMA: ControlMessage,
        LEDGER_SCHEMA: LedgerRecord,
        OWNER_SCHEMA: OwnerMarker,
    }
)
"""Each schema this bridge reads and writes, and the type of its messages (for operations, the union of events)."""

SUGGESTION: Final = "bridge.suggestion"
RESULT: Final = "bridge.result"
PROGRESS: Final = "bridge.progress"
OPERATION: Final = "bridge.operation"
DEADLETTER: Final = "bridge.deadletter"
CONTROL: Final = "bridge.control"
LEDGER: Final = "bridge.ledger"
OWNER: Final = "bridge.owner"


def family_of(name: str) -> str:
    """`bridge.ledger/v2` -> `bridge.ledger`."""
    return name.split("/", 1)[0]


def current(family: str) -> str:
    """The schema the bridge writes for `family` (the newest it knows)."""
    names = [name for name in MESSAGE_TYPES if family_of(name) == family]
    if not names:
        raise KeyError(f"no schema of family {family!r}")
    return max(names, key=lambda name: int(name.rsplit("/v", 1)[1]))


def schemas_of(*families: str) -> tuple[str, ...]:
    """Every schema this bridge reads of `families` (each of their versions)."""
    return tuple(name for name in MESSAGE_TYPES if family_of(name) in families)


def is_known(name: object) -> bool:
    """Whether this bridge reads messages of schema `name`."""
    return isinstance(name, str) and name in MESSAGE_TYPES


def is_newer(name: object) -> bool:
    """A schema of a known family but a version this bridge does not know (a newer bridge wrote it)."""
    if not isinstance(name, str) or is_known(name) or "/v" not in name:
        return False
    family = family_of(name)
    return any(family_of(known) == family for known in MESSAGE_TYPES)
