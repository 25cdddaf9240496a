"""Runs the real `bridge` command in a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.engine_support import job_component


def bridge(
    *args: str,
    cwd: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m bridge ARGS` (with `stdin` as its input), its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_operation(root: Path, values: list[dict[str, Any]], record: Path, **fields: Any) -> Path:
    """A polyaxonfile using the test job through `pathRef`, as a user would write it."""
    (root / "job.yaml").write_text(yaml.safe_dump(job_component()))
    vals = [{"name": f"r{i}", "record": str(record), **v} for i, v in enumerate(values)]
    matrix = {"kind": "mapping", "values": vals, **fields.pop("matrix", {})}
    doc = {
        "version": 1.1,
        "kind": "operation",
        "name": "cli-test",
        "matrix": matrix,
        "pathRef": "job.yaml",
        **fields,
    }
    path = root / "mapping.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
