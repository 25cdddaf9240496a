"""A trial's params checked against the bridge's template before anything is sent.

With the bridge's config at hand (its `templates`), a suggestion the bridge would refuse is refused here, where
the trial is: a param the template's component does not declare (the bridge would pass it on as a context param
and the run would use the input's default, with no word anywhere), named with the closest declared name, and
anything else the bridge's own validation refuses (a value of the wrong type, a missing required input), by that
same validation. Without the config, the bridge's answer says so instead, one round trip later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.config.settings import BridgeSettings
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.messages import SuggestionMessage
from bridge.errors import ConfigError, InvalidInput
from bridge.polyaxon import did_you_mean
from bridge.service.intake import Templates, accept


class SuggestionRefused(InvalidInput):
    """A trial's params that the template refuses: nothing was sent. `field` is the path at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def one_line(kind: str, field: str | None, message: str) -> str:
    """A refusal or a run's error in one line: its type, field and message, the field said once (the bridge's
    message may start with the path already)."""
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2 :]
    where = f" at {field}" if field else ""
    return f"{kind}{where}: {message}"


class TemplateCheck:
    """One template of the bridge's config, as the bridge will judge the suggestions sent to it."""

    def __init__(self, settings: BridgeSettings, template: str) -> None:
        """Raises `ConfigError` when the config registers no template of that name."""
        self._settings = settings
        self._templates = Templates(settings)
        op = self._templates.get(template)
        if op is None:
            known = self._templates.names()
            raise ConfigError(
                f"template `{template}` is not in the bridge config's templates ({', '.join(known) or 'none'})"
                + did_you_mean(template, known)
            )
        self.template = template
        declared = [io.name for io in op.component.io] if op.component is not None else []
        context = [name for name, param in (op.params or {}).items() if param.context_only]
        self.declared: Sequence[str] = sorted({*declared, *context})

    def undeclared(self, params: Mapping[str, Any]) -> list[str]:
        """One line per param the template does not declare, with the closest declared name."""
        known = set(self.declared)
        return [
            f"params.{name}: the template `{self.template}` declares no `{name}`" + did_you_mean(name, self.declared)
            for name in params
            if name not in known
        ]

    def check(self, message: SuggestionMessage) -> None:
        """Raise `SuggestionRefused` when the bridge would refuse a suggestion of `message` (one trial's)."""
        for suggestion in message.suggestions:
            undeclared = self.undeclared({**message.params, **suggestion.params})
            if undeclared:
                raise SuggestionRefused("; ".join(undeclared), undeclared[0].partition(":")[0])
        outcome = accept(message.to_json().encode(), self._templates, self._settings)
        error = outcome if isinstance(outcome, DeadLetterError) else next((r.error for r in outcome.refused), None)
        if error is not None:
            raise SuggestionRefused(one_line(error.type, error.field, error.message), error.field)
