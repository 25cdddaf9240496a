"""Why a run's process cannot be started, in words for its result, found before the operating system is asked.

exec takes bytes ending at the first NUL, so a string holding a NUL byte or a lone surrogate (text that has no
bytes) cannot be an argument, a variable or a directory: Python raises ValueError or UnicodeEncodeError. And under
setpriv a missing program is setpriv's own exit status 127, not an error. Each is looked up here first, so such a
run fails with `start_failed` and the reason instead of an exception.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from bridge.contract.limits import printable


def text_problem(text: str) -> str | None:
    """Why `text` cannot be passed to exec: it holds a NUL byte or a lone surrogate; None when it can."""
    if "\0" in text:
        return "contains a NUL byte"
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate {printable(text[exc.start : exc.end])} at position {exc.start}"
    return None


def _unpassable(argv: list[str], env: Mapping[str, str], cwd: Path) -> str | None:
    for index, arg in enumerate(argv):
        if (problem := text_problem(arg)) is not None:
            return f"{'the program name' if index == 0 else f'argument {index}'} {problem}"
    for name, value in env.items():
        if not name or "=" in name or text_problem(name) is not None:
            return f"environment variable name '{printable(name)}' is not a valid name"
        if (problem := text_problem(value)) is not None:
            return f"environment variable {name} {problem}"
    if (problem := text_problem(str(cwd))) is not None:
        return f"the working directory {problem}"
    return None


def _not_executable(argv: list[str], env: Mapping[str, str], cwd: Path) -> str | None:
    program = argv[0]
    if os.sep in program:
        path = cwd / program  # relative to the run's working directory, as exec sees it; absolute stays so
        if not path.exists():
            return os.strerror(errno.ENOENT)
        if path.is_dir() or not os.access(path, os.X_OK):
            return os.strerror(errno.EACCES)
        return None
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return os.strerror(errno.ENOENT)
    return None


def cannot_start(argv: list[str], env: Mapping[str, str], cwd: Path) -> str | None:
    """Why this argv cannot be started with this environment in this directory, in the words exec would use
    where it has words; None when it can."""
    if not argv:
        return "the command is empty"
    return _unpassable(argv, env, cwd) or _not_executable(argv, env, cwd)
