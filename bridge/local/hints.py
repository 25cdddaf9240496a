"""Warnings about params that are valid but probably not what the user meant, for `bridge run`, `bridge check`
and `bridge submit`.

With `strictParams` off, Polyaxon keeps an undeclared param as a context param: a misspelt `learning_rat: 0.05`
runs with `learning_rate`'s default and nobody is told. The file stays valid (Polyaxon accepts it, and so must
the bridge), but a person should hear about it:

- a param in `params` or `matrix.values` that the component does not declare, with the closest declared name;
- a `-P name=value` that no input or output declares;
- a `-P name=value` that the mapping's own values replace in some runs (a run's values win, as in Polyaxon);
- a param of a suggestion message that its template does not declare (`suggestion_warnings`), or the same as
  the bridge's answer to each suggestion words it, from the operation the bridge built (`answer_warnings`).

Params marked `contextOnly: true` are undeclared on purpose and never warned about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bridge.polyaxon import V1Operation, undeclared_param_warnings
from bridge.polyaxon import did_you_mean as _suggest

if TYPE_CHECKING:  # `bridge run` never reads a suggestion message: not imported when it starts
    from bridge.contract.messages import SuggestionMessage


def _runs(count: int, total: int) -> str:
    return f"all {total} runs" if count == total else f"{count} of {total} runs"


def param_warnings(op: V1Operation, overrides: Mapping[str, str]) -> list[str]:
    """One line per suspicious param of a validated operation; `overrides` are the `-P` pairs given."""
    component = op.component
    if component is None:
        return []
    declared = [io.name for io in component.io]
    known = set(declared)
    params = op.params or {}
    values: list[Mapping[str, Any]] = []
    if op.matrix is not None and isinstance(op.matrix.values, list):
        values = [v for v in op.matrix.values if isinstance(v, Mapping)]
    warnings: list[str] = []
    # With strictParams on these are errors already, and nothing gets this far.
    for name, param in params.items():
        if name in overrides or name in known or param.context_only:
            continue
        warnings.append(
            f"params.{name}: the component declares no `{name}`; it is passed on as a context param only"
            + _suggest(name, declared)
        )
    for name, first, count in _undeclared_in_values(values, known):
        where = f"matrix.values[{first}].{name}" + (f" (and {count - 1} more run(s))" if count > 1 else "")
        warnings.append(
            f"{where}: the component declares no `{name}`; the run(s) get it as a context param only"
            + _suggest(name, declared)
        )
    for name, raw in overrides.items():
        if name not in known and not (name in params and params[name].context_only):
            warnings.append(f"-P {name}={raw}: no input or output is named `{name}`" + _suggest(name, declared))
            continue
        replaced = sum(1 for v in values if name in v)
        if replaced:
            warnings.append(
                f"-P {name}={raw}: matrix.values sets `{name}` in {_runs(replaced, len(values))}, "
                "and a run's own values win over params"
            )
    return warnings


def _undeclared_in_values(values: Sequence[Mapping[str, Any]], known: set[str]) -> list[tuple[str, int, int]]:
    """(name, index of its first run, runs with it) for every undeclared key, in order of appearance."""
    seen: dict[str, list[int]] = {}
    for index, entry in enumerate(values):
        for name in entry:
            if str(name) not in known:
                seen.setdefault(str(name), [index, 0])[1] += 1
    return [(name, first, count) for name, (first, count) in seen.items()]


def suggestion_warnings(op: V1Operation, message: SuggestionMessage) -> dict[int | None, list[str]]:
    """The params of a suggestion message that its template `op` does not declare, as `check` words them: by
    suggestion index (None: the message's own `params`, shared by all). With strictParams these are refusals.
    The bridge words the same warnings in each run's result (`RunResult.warnings`), naming the result's params."""
    out: dict[int | None, list[str]] = {}
    shared = undeclared_param_warnings(op, message.template, message.params)
    if shared:
        out[None] = shared
    for i, suggestion in enumerate(message.suggestions):
        own = undeclared_param_warnings(op, message.template, suggestion.params, path=f"suggestions[{i}].params")
        if own:
            out[i] = own
    return out


def answer_warnings(operation: Mapping[str, Any], message: SuggestionMessage) -> dict[str, list[str]]:
    """By suggestion id (those with any), the warnings the bridge's answer to each suggestion of `message` carries
    (`RunResult.warnings`, as bridge/service/intake.py `accept` words them: the run's params, `params.<name>`),
    from `operation`, the operation the bridge built for the message's template (an `OperationCreated` event's).
    Empty for an operation this bridge cannot read (a newer bridge's, say)."""
    try:
        op = V1Operation.model_validate(operation)
    except ValidationError:
        return {}
    ids = message.suggestion_ids()
    out: dict[str, list[str]] = {}
    for i in range(len(message.suggestions)):
        said = undeclared_param_warnings(op, message.template, message.run_params(i))
        if said:
            out[ids[i]] = said
    return out
