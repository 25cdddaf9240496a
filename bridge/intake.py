"""From the bytes of a suggestions record to the runs it asks for, or to the reason it is a dead letter.

Pure: no Kafka, no I/O but reading the templates once. Every refusal is a `DeadLetterError` with a stable
`type` and the field path, e.g. `suggestions[1].params.epochs`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bridge.config import BridgeSettings
from bridge.deadletters import DeadLetterError
from bridge.errors import ConfigError, InvalidInput, PolyaxonfileError, Problem
from bridge.identity import run_id_of
from bridge.limits import LimitExceeded, check_value
from bridge.messages import (
    SUGGESTION_SCHEMA,
    LedgerRecord,
    MessageError,
    SuggestionMessage,
)
from bridge.plan import PlannedRun
from bridge.polyaxon import RenderBudget, UrlPolicy, V1Operation, budget_scope, expand_runs, parse_operation
from bridge.wire import parse_suggestion

_SUGGESTION_PATH = re.compile(r"^suggestions\[(\d+)\]\.")


@dataclass(frozen=True)
class Accepted:
    """A valid suggestion message: its study, template and runs (each with its position in the message and the
    ids it keeps for good)."""

    study: str
    template: str
    operation: V1Operation
    runs: list[PlannedRun]


class Templates:
    """The operations registered in the config, parsed once at start: a bad one stops the bridge clearly."""

    def __init__(self, settings: BridgeSettings) -> None:
        self._ops: dict[str, V1Operation] = {}
        for name, body in settings.templates.items():
            data = {"kind": "operation", "name": name, **body} if "kind" not in body else dict(body)
            data.setdefault("name", name)
            try:
                # Written by the operator: trusted to reach internal hosts, still under the fetch deadline.
                policy = UrlPolicy.trusted(timeout_s=settings.inline.fetch_timeout_s)
                self._ops[name] = parse_operation(
                    data, source=f"templates.{name}", base_dir=settings.base_dir, url_policy=policy
                )
            except InvalidInput as exc:
                raise ConfigError(f"template `{name}` is invalid: {exc}") from exc

    def get(self, name: str) -> V1Operation | None:
        """The template named `name`."""
        return self._ops.get(name)

    def cache_ttls(self) -> list[float]:
        """The cache ttl of each template that sets one (pruning keeps cached results at least that long)."""
        ttls = []
        for op in self._ops.values():
            cache = op.effective_cache
            if cache is not None and cache.ttl:
                ttls.append(float(cache.ttl))
        return ttls

    def names(self) -> list[str]:
        """Every registered template."""
        return sorted(self._ops)


def _rewrite(problems: list[Problem], msg: SuggestionMessage) -> list[Problem]:
    out = []
    for p in problems:
        m = _SUGGESTION_PATH.match(p.path)
        if m is not None:
            index, name = int(m.group(1)), p.path[m.end() :]
            own = msg.suggestions[index].params if index < len(msg.suggestions) else {}
            top = name.split(".", 1)[0].split("[", 1)[0]
            path = f"params.{name}" if top in msg.params and top not in own else f"suggestions[{index}].params.{name}"
            out.append(Problem(path, p.message))
        else:
            out.append(p)
    return out


def _operation_of(
    msg: SuggestionMessage, templates: Templates, settings: BridgeSettings
) -> V1Operation | DeadLetterError:
    """The operation a message names: its registered template, or its inline operation where those are allowed."""
    if msg.operation is not None:
        if not settings.allow_inline_operations:
            return DeadLetterError(
                type="inline_operation_refused",
                message="this bridge runs registered templates only (allow_inline_operations is false)",
                field="operation",
            )
        try:
            policy = UrlPolicy(allow_hosts=settings.inline.allow_hosts, timeout_s=settings.inline.fetch_timeout_s)
            return parse_operation(
                msg.operation,
                source=f"{msg.study}/operation",
                base_dir=None,
                url_policy=policy,
                render_budget=RenderBudget(timeout_s=settings.inline.render_timeout_s),
            )
        except InvalidInput as exc:
            return DeadLetterError.from_exception(exc)
    else:
        found = templates.get(msg.template)
        if found is None:
            known = ", ".join(templates.names()) or "none"
            return DeadLetterError(
                type="unknown_template",
                field="template",
                message=f"no template `{msg.template}` is registered (known: {known})",
            )
        return found


def _unfit_value(
    typed: list[dict[str, Any]], msg: SuggestionMessage, settings: BridgeSettings
) -> DeadLetterError | None:
    """A typed value no run should get although its text passed: "1e999" as a float, "1e30" as an int."""
    limits = settings.message_limits()
    for index, params in enumerate(typed):
        try:
            check_value(params, limits)
        except LimitExceeded as exc:
            path = f"suggestions[{index}].{exc.field}" if exc.field else f"suggestions[{index}]"
            problem = _rewrite([Problem(path, exc.message)], msg)[0]
            return DeadLetterError(type="invalid_params", field=problem.path, message=f"{problem.path}: {exc.message}")
    return None


def accept(raw: bytes, templates: Templates, settings: BridgeSettings) -> Accepted | DeadLetterError:
    """Validate one record of the suggestions topic against its template.

    With inline operations allowed, this may fetch a `urlRef` and render an untrusted template (each under its
    deadline): the service then calls it in a worker thread, never on the event loop.
    """
    try:
        msg = parse_suggestion(raw, max_suggestions=settings.max_suggestions, limits=settings.message_limits())
    except MessageError as exc:
        return DeadLetterError.from_exception(exc)
    op = _operation_of(msg, templates, settings)
    if isinstance(op, DeadLetterError):
        return op
    values = [msg.run_params(i) for i in range(len(msg.suggestions))]
    try:
        with budget_scope(RenderBudget(timeout_s=settings.inline.render_timeout_s)):
            typed = expand_runs(op, values, source=f"template {msg.template}", values_path="suggestions")
    except PolyaxonfileError as exc:
        problems = _rewrite(exc.problems, msg)
        return DeadLetterError(
            type="invalid_params",
            message="; ".join(map(str, problems)),
            field=problems[0].path if problems else None,
        )
    if (unfit := _unfit_value(typed, msg, settings)) is not None:
        return unfit
    ids = msg.suggestion_ids()
    op_params = set(op.params or {})
    runs = [
        PlannedRun(
            index=i,
            run_id=run_id_of(msg.study, msg.template, ids[i]),
            suggestion_id=ids[i],
            params=params,
            given={k: params[k] for k in params if k in values[i] or k in op_params},
            iteration=msg.iteration,
            metadata=msg.metadata,
        )
        for i, params in enumerate(typed)
    ]
    return Accepted(study=msg.study, template=msg.template, operation=op, runs=runs)


def accept_ledger_record(
    record: LedgerRecord, templates: Templates, settings: BridgeSettings
) -> tuple[V1Operation, PlannedRun] | DeadLetterError:
    """Validate an unfinished ledger record exactly as the suggestion it claims to be, before it runs again.

    The ledger is a topic: whoever can write to it could otherwise name any command. Its params are typed again
    from what the suggestion gave (the record's own `params` are not trusted), its template must be registered
    (an inline operation only where they are allowed), and its run id must be the one that suggestion gets.
    """
    message = {
        "schema": SUGGESTION_SCHEMA,
        "study": record.study,
        "template": record.template,
        "iteration": record.iteration,
        "suggestions": [{"id": record.suggestion_id, "params": record.given}],
        "metadata": record.metadata,
    }
    if record.operation is not None:
        message["operation"] = record.operation
    outcome = accept(json.dumps(message).encode(), templates, settings)
    if isinstance(outcome, DeadLetterError):
        field = outcome.field
        if field is not None and field.startswith("suggestions[0]."):
            field = field.removeprefix("suggestions[0].").replace("params.", "given.", 1)
        return outcome.model_copy(update={"field": field})
    run = outcome.runs[0]
    if run.run_id != record.run_id:
        return DeadLetterError(
            type="invalid_message",
            field="run_id",
            message=f"run_id {record.run_id[:80]!r} is not the id of suggestion {record.suggestion_id!r}"
            f" of study {record.study!r} and template {record.template!r}",
        )
    return outcome.operation, run
