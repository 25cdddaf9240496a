"""Runs the real `bridge` command in a subprocess, the way a user does."""

from __future__ import annotations

import json
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


def executions(record: Path) -> list[dict[str, object]]:
    """What each execution of a run wrote into `record` (the scripts job's record dir), in file-name order."""
    return [json.loads(f.read_text()) for f in sorted(record.glob("*.json"))]


def process_alive(pid: int) -> bool:
    """Whether `pid` still runs: a killed child stays a zombie until init reaps it, and a zombie is not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
