"""From the bytes of a suggestions record to the runs it asks for and the suggestions it refuses, or to the
reason the whole record is a dead letter.

Pure: no Kafka, no I/O but reading the templates once. Every refusal is a `DeadLetterError` with a stable
`type` and the field path, e.g. `suggestions[1].params.epochs`. A record that cannot be read (not JSON, unknown
schema, no study) is a dead letter alone; in a readable one, each suggestion is judged on its own: the valid ones
run, each invalid one is `Refused` (it gets a failed answer), and the record gets one dead letter for them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config.settings import BridgeSettings
from bridge.contract.codec import parse_suggestion
from bridge.contract.dead_letters import DeadLetterError
from bridge.contract.identity import run_id_of
from bridge.contract.limits import LimitExceeded, check_value
from bridge.contract.messages import (
    SUGGESTION_SCHEMA,
    LedgerRecord,
    MessageError,
    SuggestionMessage,
)
from bridge.engine.plan import PlannedRun
from bridge.errors import ConfigError, InvalidInput, PolyaxonfileError, Problem
from bridge.polyaxon import (
    RenderBudget,
    UrlPolicy,
    V1Operation,
    budget_scope,
    expand_runs,
    parse_operation,
    undeclared_param_warnings,
)

_SUGGESTION_PATH = re.compile(r"^suggestions\[(\d+)\]\.")


@dataclass(frozen=True)
class Refused:
    """A suggestion of a readable message that will not run: it is answered with a failed result saying why."""

    index: int  # its position in the message
    run_id: str  # the id its run would have had: a resend of it is recognised by it
    suggestion_id: str
    given: dict[str, Any]  # the params as sent (op-level under its own), untyped: they did not pass
    error: DeadLetterError
    iteration: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # its answer's `warnings`, as a run's would be


@dataclass(frozen=True)
class Accepted:
    """A readable suggestion message: its study, template, the runs of its valid suggestions (each with its
    position in the message and the ids it keeps for good), and its refused ones with the record's dead letter.

    `operation` is None when the message names none this bridge runs (every suggestion is refused then)."""

    study: str
    template: str
    operation: V1Operation | None
    runs: list[PlannedRun]
    refused: list[Refused] = field(default_factory=list)
    dead_letter: DeadLetterError | None = None  # the one dead letter of the record, when anything was refused


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
    params: dict[str, Any], index: int, msg: SuggestionMessage, settings: BridgeSettings
) -> Problem | None:
    """A typed value no run should get although its text passed: "1e999" as a float, "1e30" as an int."""
    try:
        check_value(params, settings.message_limits())
    except LimitExceeded as exc:
        path = f"suggestions[{index}].{exc.field}" if exc.field else f"suggestions[{index}]"
        return _rewrite([Problem(path, exc.message)], msg)[0]
    return None


def _problems_by_suggestion(problems: list[Problem], msg: SuggestionMessage) -> dict[int | None, list[Problem]]:
    """Problems grouped by the suggestion they are about (None: not one suggestion's), paths rewritten."""
    out: dict[int | None, list[Problem]] = {}
    for p in problems:
        m = _SUGGESTION_PATH.match(p.path)
        out.setdefault(int(m.group(1)) if m else None, []).extend(_rewrite([p], msg))
    return out


def _invalid(problems: list[Problem]) -> DeadLetterError:
    return DeadLetterError(
        type="invalid_params", message="; ".join(map(str, problems)), field=problems[0].path if problems else None
    )


def _typed(
    op: V1Operation, msg: SuggestionMessage, values: list[dict[str, Any]], settings: BridgeSettings
) -> dict[int, dict[str, Any] | DeadLetterError]:
    """Each suggestion's typed params, or why they are invalid for the operation."""
    out: dict[int, dict[str, Any] | DeadLetterError] = {}
    valid = list(range(len(values)))
    with budget_scope(RenderBudget(timeout_s=settings.inline.render_timeout_s)):
        try:
            typed = expand_runs(op, values, source=f"template {msg.template}", values_path="suggestions")
        except PolyaxonfileError as exc:
            grouped = _problems_by_suggestion(exc.problems, msg)
            if None in grouped or not grouped:  # not one suggestion's fault: none of them can run
                error = _invalid(_rewrite(exc.problems, msg))
                return {i: error for i in valid}
            out.update({i: _invalid(problems) for i, problems in grouped.items() if i is not None})
            valid = [i for i in valid if i not in out]
            try:
                rest = [values[i] for i in valid]
                typed = expand_runs(op, rest, source=f"template {msg.template}") if rest else []
            except PolyaxonfileError as again:  # they passed together with the others: not expected, never run it
                error = _invalid(_rewrite(again.problems, msg))
                return {i: error for i in range(len(values))}
    for i, params in zip(valid, typed, strict=True):
        problem = _unfit_value(params, i, msg, settings)
        out[i] = params if problem is None else _invalid([problem])
    return out


def dead_letter_of(errors: list[DeadLetterError]) -> DeadLetterError:
    """A record's one dead letter for all its refused suggestions: the first's type and field, every message."""
    first = errors[0]
    messages = list(dict.fromkeys(e.message for e in errors))
    return first.model_copy(update={"message": "; ".join(messages)})


def accept(raw: bytes, templates: Templates, settings: BridgeSettings) -> Accepted | DeadLetterError:
    """Validate one record of the suggestions topic against its template: a `DeadLetterError` when it cannot be
    read at all, else its runs and its refused suggestions.

    With inline operations allowed, this may fetch a `urlRef` and render an untrusted template (each under its
    deadline): the service then calls it in a worker thread, never on the event loop.
    """
    try:
        msg = parse_suggestion(raw, max_suggestions=settings.max_suggestions, limits=settings.message_limits())
    except MessageError as exc:
        return DeadLetterError.from_exception(exc)
    ids = msg.suggestion_ids()
    values = [msg.run_params(i) for i in range(len(msg.suggestions))]
    op = _operation_of(msg, templates, settings)
    # The whole message's fault (no such template, an inline operation refused): each suggestion says so.
    typed = (
        {i: op for i in range(len(values))} if isinstance(op, DeadLetterError) else _typed(op, msg, values, settings)
    )
    op_params = set(op.params or {}) if not isinstance(op, DeadLetterError) else set()
    runs, refused = [], []
    for i in range(len(values)):
        run_id = run_id_of(msg.study, msg.template, ids[i])
        outcome = typed[i]
        # Named as in the answer's own `params`: the same words whether it came from this message, a resend, or
        # the ledger's record of it on another replica.
        warnings = (
            () if isinstance(op, DeadLetterError) else tuple(undeclared_param_warnings(op, msg.template, values[i]))
        )
        if isinstance(outcome, DeadLetterError):
            refused.append(Refused(i, run_id, ids[i], values[i], outcome, msg.iteration, msg.metadata, warnings))
            continue
        runs.append(
            PlannedRun(
                index=i,
                run_id=run_id,
                suggestion_id=ids[i],
                params=outcome,
                given={k: outcome[k] for k in outcome if k in values[i] or k in op_params},
                iteration=msg.iteration,
                metadata=msg.metadata,
                warnings=warnings,
            )
        )
    return Accepted(
        study=msg.study,
        template=msg.template,
        operation=None if isinstance(op, DeadLetterError) else op,
        runs=runs,
        refused=refused,
        dead_letter=dead_letter_of([r.error for r in refused]) if refused else None,
    )


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
        return _as_ledger_error(outcome)
    if outcome.operation is None or not outcome.runs:  # its one suggestion was refused
        return _as_ledger_error(outcome.dead_letter or DeadLetterError(type="invalid_message", message="no run"))
    run = outcome.runs[0]
    if run.run_id != record.run_id:
        return DeadLetterError(
            type="invalid_message",
            field="run_id",
            message=f"run_id {record.run_id[:80]!r} is not the id of suggestion {record.suggestion_id!r}"
            f" of study {record.study!r} and template {record.template!r}",
        )
    return outcome.operation, run


def _as_ledger_error(error: DeadLetterError) -> DeadLetterError:
    """A suggestion's error, its field path named as in the ledger record."""
    field = error.field
    if field is not None and field.startswith("suggestions[0]."):
        field = field.removeprefix("suggestions[0].").replace("params.", "given.", 1)
    return error.model_copy(update={"field": field})
