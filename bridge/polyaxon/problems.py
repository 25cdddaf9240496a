"""Turn pydantic's validation errors into the bridge's Problems, with paths as a user reads them."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bridge.errors import NotSupported, PolyaxonfileError, Problem
from bridge.polyaxon.base import AT_KEY, NOT_SUPPORTED


class Unsupported(Problem):
    """A problem that is a Polyaxon feature the bridge does not run (so the error is NotSupported)."""


# Tags of discriminated unions: pydantic puts them in the error location, a user never wrote them there.
_UNION_TAGS = frozenset({"metric_early_stopping", "failure_early_stopping", "median", "truncation", "diff"})


def join_path(prefix: str, loc: Sequence[int | str]) -> str:
    """`("values", 3, "epochs")` under `matrix` -> `matrix.values[3].epochs`."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_TAGS or part.startswith(("function-", "list[", "dict[")):
            continue
        else:
            path = f"{path}.{part}" if path else part
    return path


def problems_from(exc: ValidationError, *, prefix: str = "", root_sections: bool = False) -> list[Problem]:
    """One Problem per pydantic error. `root_sections`: unknown top-level keys read as Polyaxon's sections."""
    return [_problem(err, prefix, root_sections) for err in exc.errors(include_url=False)]


def _problem(err: ErrorDetails, prefix: str, root_sections: bool) -> Problem:
    loc = err["loc"]
    path = join_path(prefix, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        if root_sections and len(loc) == 1 and not prefix:
            return Problem(path, f"Unexpected section `{key}` in Polyaxonfile.")
        return Problem(path, f"Extra inputs are not permitted: unknown key `{key}`")
    if kind == NOT_SUPPORTED:
        key = str((err.get("ctx") or {}).get("key", ""))
        return Unsupported(join_path(path, [key]) if key else path, err["msg"])
    if kind == AT_KEY:
        return Problem(join_path(path, [str((err.get("ctx") or {}).get("key", ""))]), err["msg"])
    message = err["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    return Problem(path, message)


def raise_problems(source: str, problems: list[Problem]) -> None:
    """Raise one error for all problems: NotSupported when every problem is an unsupported feature."""
    if not problems:
        return
    if all(isinstance(p, Unsupported) for p in problems):
        raise NotSupported(source=source, problems=problems)
    raise PolyaxonfileError(source=source, problems=problems)
