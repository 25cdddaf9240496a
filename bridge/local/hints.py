"""Warnings about params that are valid but probably not what the user meant, for `bridge run` and `bridge check`.

With `strictParams` off, Polyaxon keeps an undeclared param as a context param: a misspelt `learning_rat: 0.05`
runs with `learning_rate`'s default and nobody is told. The file stays valid (Polyaxon accepts it, and so must
the bridge), but a person should hear about it:

- a param in `params` or `matrix.values` that the component does not declare, with the closest declared name;
- a `-P name=value` that no input or output declares;
- a `-P name=value` that the mapping's own values replace in some runs (a run's values win, as in Polyaxon).

Params marked `contextOnly: true` are undeclared on purpose and never warned about.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.polyaxon import V1Operation


def _suggest(name: str, declared: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


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
