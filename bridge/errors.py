"""The one error tree of the bridge.

    BridgeError
    ├── InvalidInput            bad polyaxonfile, params, config or message: never retried, nothing runs
    │   ├── PolyaxonfileError   names the file, the path in it and what was expected
    │   ├── NotSupported        a Polyaxon feature the bridge does not offer (hubRef, dagRef, ...)
    │   └── ConfigError         the bridge's own configuration
    ├── ComponentFetchError     a urlRef/pathRef/git init could not be fetched
    ├── Retryable               a transient failure (broker away, ...): retried with backoff, then reported
    ├── BrokerRefused           the broker said no for good (authorization, a record too large, ...)
    ├── Fenced                  another replica owns the partition now: nothing more is published from here
    ├── HandedOver              a run's attempt cannot be recorded, its partition gone: it must not start
    └── PublishIncomplete       closing a publisher left records it could not commit

Kafka's own errors are mapped into this tree in one place, `bridge.kafka.errors.kafka_error`.

Errors carry data, not only text, so the CLI, the dead-letter topic and the logs can each show them their way.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BridgeError(Exception):
    """The root of every error the bridge raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what was expected there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidInput(BridgeError):
    """Input from outside that will never become valid by retrying."""


@dataclass
class PolyaxonfileError(InvalidInput):
    """A polyaxonfile (or a message standing for one) that does not validate.

    `problems` lists every problem found, each with its path in the document (`matrix.values[3].epochs`).
    """

    source: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def path(self) -> str:
        """The path of the first problem, for the dead-letter message's `field` entry."""
        return self.problems[0].path if self.problems else ""

    def __str__(self) -> str:
        lines = [f"{self.source}: {p}" for p in self.problems] or [f"{self.source}: invalid"]
        return "\n".join(lines)


@dataclass
class NotSupported(PolyaxonfileError):
    """A Polyaxon feature that exists but that this bridge does not run."""


class ConfigError(InvalidInput):
    """The bridge's own configuration is wrong."""


class ComponentFetchError(BridgeError):
    """A component (urlRef, pathRef) or an init step (git) could not be fetched."""


class Retryable(BridgeError):
    """A failure worth retrying with backoff: a broker or a cluster that went away for a while."""


class BrokerRefused(BridgeError):
    """The broker refused a request for good: retrying the same request cannot succeed."""


class Fenced(BridgeError):
    """Another replica owns this partition now: nothing more is published from here."""


class HandedOver(BridgeError):
    """A run's attempt cannot be recorded because its partition belongs to another replica now: the attempt must
    not start (its next owner runs it, with its own attempt number)."""


class PublishIncomplete(BridgeError):
    """Closing a publisher left records it could not commit."""


EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
"""The `bridge` command's exit codes, shared by its handlers (bridge/cli/) and `bridge.cli.main.main`."""
