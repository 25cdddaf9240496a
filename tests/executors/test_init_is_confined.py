"""`init: [{git: ...}]` clones into the run's artifacts path and nowhere else, and never lets git read the url as
an option: a `path` outside the run's folder, or a url such as `--upload-pack=<command>`, fails the run with
`init_failed` before git runs, and the run's own command never starts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from tests.engine_support import Engine


def _repo(root: Path, name: str, *, bare: bool = False) -> Path:
    source = root / f"{name}-source"
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    ident = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "-C", str(source), *ident, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    if not bare:
        return source
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(root / name)], check=True)
    return root / name


def _component(init: dict[str, Any], started: Path) -> dict[str, Any]:
    return {
        "kind": "component",
        "name": "with-init",
        "run": {
            "kind": "job",
            "init": [init],
            "container": {
                "image": "python:3.11",
                "command": ["python3", "-c", f"open({str(started)!r}, 'w')"],
            },
        },
    }


def _exists(path: Path) -> bool:
    return path.exists()


@pytest.fixture
def started(engine: Engine) -> Path:
    return engine.root / "run-started"


async def test_a_git_init_is_cloned_into_the_runs_artifacts(engine: Engine, started: Path) -> None:
    repo = _repo(engine.root, "model")
    (result,) = (await engine.run(engine.operation_of(_component({"git": {"url": str(repo)}}, started), [{}]))).results
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert (engine.workdir / "runs" / result.run_id / "model-source" / ".git").is_dir()


async def test_a_url_git_would_read_as_an_option_is_refused(engine: Engine, started: Path) -> None:
    # Cloned "into" a bare repository, that url would have git run the command as its upload-pack.
    marker = engine.root / "command-ran"
    bare = _repo(engine.root, "bare.git", bare=True)
    init = {"git": {"url": f"--upload-pack=touch {marker};false"}, "path": str(bare)}
    (result,) = (await engine.run(engine.operation_of(_component(init, started), [{}]))).results
    assert result.status is RunStatus.FAILED and result.error is not None
    assert result.error.type == "init_failed"
    assert not _exists(marker) and not _exists(started)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
async def test_an_init_path_outside_the_run_is_refused(engine: Engine, started: Path, kind: str) -> None:
    repo = _repo(engine.root, "model")
    elsewhere = engine.root / "elsewhere"  # the artifacts path is <root>/work/runs/<run id>
    init = {"git": {"url": str(repo)}, "path": "../../../elsewhere" if kind == "relative" else str(elsewhere)}
    (result,) = (await engine.run(engine.operation_of(_component(init, started), [{}]))).results
    assert result.status is RunStatus.FAILED and result.error is not None
    assert result.error.type == "init_failed"
    assert "is not a folder inside the run's artifacts path" in result.error.message
    assert not _exists(elsewhere) and not _exists(started)
