"""Where a run keeps its files under the work dir, and the component's `init` steps that prepare them."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.executors.base import GitInit
from bridge.logs import get_logger
from bridge.polyaxon import V1Component

log = get_logger(__name__)

GIT_TIMEOUT_S = 300.0


def runs_dir(workdir: Path) -> Path:
    """`<workdir>/runs/`: one folder per run, named by its run id."""
    return workdir / "runs"


@functools.lru_cache(maxsize=16)
def _resolved_runs_dir(workdir: Path) -> Path:
    # Resolved once per work dir, not once per run: each resolve is a system call per path component.
    return runs_dir(workdir).resolve()


@dataclass(frozen=True)
class RunPaths:
    """`<workdir>/runs/<run_id>/`: the run's artifacts path, its outputs, one folder per attempt for logs."""

    artifacts: Path
    outputs: Path

    @classmethod
    def for_run(cls, workdir: Path, run_id: str) -> RunPaths:
        """The paths of one run (created on use: the executor makes them as it starts an attempt)."""
        artifacts = _resolved_runs_dir(workdir) / run_id  # a run id is a UUID: no link, no `..` to resolve
        return cls(artifacts=artifacts, outputs=artifacts / "outputs")

    def attempt(self, attempt: int) -> Path:
        """The folder of one attempt: stdout.log, stderr.log, metrics.jsonl."""
        return self.artifacts / "attempts" / str(attempt)


def _repo_dir_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".git") or "repo"


async def _git(*args: str, cwd: Path | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=GIT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        raise OSError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise OSError(f"git {' '.join(args)} failed: {err.decode(errors='replace').strip()[-500:]}")


def _clone_dest(artifacts: Path, url: str, path: str | None) -> Path:
    dest = (artifacts / (path or _repo_dir_name(url))).resolve()
    # `path` comes with the operation: an absolute or `..` one would clone over any folder the bridge can write.
    if dest == artifacts or not dest.is_relative_to(artifacts):
        raise OSError(f"init path {path!r} is not a folder inside the run's artifacts path")
    return dest


def git_init_steps(component: V1Component) -> tuple[GitInit, ...]:
    """The component's `init: [{git: ...}]` steps, for the executor to do where the run runs."""
    return tuple(
        GitInit(url=step.git.url, revision=step.git.revision, path=step.path)
        for step in component.run.init or []
        if step.git is not None and step.git.url
    )


async def prepare_init(steps: Sequence[GitInit], artifacts: Path) -> None:
    """Do a run's `init` steps once per run, on the node it runs on: each is cloned into the run's `artifacts`
    folder, an absolute path (under `path`, or the repository's name), at `revision` when given. Raises OSError
    with git's words, or for a `path` outside the artifacts path or a url or revision git would read as an option.
    Without such steps it touches no file (it runs on the event loop before every attempt)."""
    for step in steps:
        url, revision = step.url, step.revision
        # A url such as `--upload-pack=<command>` would have git run that command.
        for name, value in (("url", url), ("revision", revision or "")):
            if value.startswith("-"):
                raise OSError(f"init git {name} {value!r} starts with '-' (git would read it as an option)")
        dest = _clone_dest(artifacts, url, step.path)
        if (dest / ".git").exists():
            continue  # cloned by an earlier attempt of this run
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("init_git_clone", url=url, revision=revision, dest=str(dest))
        await _git("clone", "--quiet", "--", url, str(dest))
        if revision:
            await _git("checkout", "--quiet", "--detach", revision, cwd=dest)
