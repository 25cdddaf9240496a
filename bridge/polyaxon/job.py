"""The job a component runs: its init steps (git only) and its one container, whose command renders to an argv.

Field names follow Polyaxon (camelCase in YAML, snake_case here), as in schema.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictStr, field_validator, model_validator

from bridge.polyaxon.base import PolyaxonModel


class V1EnvVar(PolyaxonModel):
    """An environment variable of the container; `value` may be a template."""

    name: StrictStr
    value: str | None = None

    _not_supported = frozenset({"valueFrom"})

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_text(cls, v: Any) -> Any:
        # YAML reads `value: 1` as a number; Kubernetes would refuse it, a local run can take its text.
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return v


def _str_or_str_list(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(item, str | int | float) for item in v):
        # YAML reads `- 5` as a number; the argv element is its text.
        return [item if isinstance(item, str) else str(item) for item in v]
    raise ValueError("must be a string or a list of strings")


class V1Container(PolyaxonModel):
    """The process to run. `command`/`args` render to one argv, never through a shell."""

    name: str | None = None
    image: str | None = None
    command: list[str] | str | None = None
    args: list[str] | str | None = None
    env: list[V1EnvVar] | None = None
    working_dir: str | None = Field(default=None, alias="workingDir")
    resources: dict[str, Any] | None = None

    _ignored = frozenset({"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy"})
    _not_supported = frozenset(
        {"envFrom", "volumeMounts", "volumeDevices", "ports", "lifecycle", "livenessProbe", "readinessProbe"}
        | {"startupProbe", "securityContext", "stdin", "stdinOnce", "tty", "resizePolicy", "restartPolicy"}
    )

    _check_command = field_validator("command", "args", mode="before")(_str_or_str_list)


class V1GitInit(PolyaxonModel):
    """A git repository to clone before the run."""

    url: str | None = None
    revision: str | None = None
    flags: list[str] | None = None

    _not_supported = frozenset({"connection"})


class V1Init(PolyaxonModel):
    """One init step. Only `git` (with an optional `path`, relative to the artifacts path) is run."""

    git: V1GitInit | None = None
    path: str | None = None

    _not_supported = frozenset(
        {"artifacts", "paths", "dockerfile", "file", "tensorboard", "lineageRef", "modelRef", "artifactRef"}
        | {"connection", "container"}
    )

    @model_validator(mode="after")
    def _needs_git(self) -> V1Init:
        if self.git is None:
            raise ValueError("an init step needs `git` (the only init kind the bridge runs)")
        return self


class V1Job(PolyaxonModel):
    """`run: {kind: job}`: init steps, then one container."""

    kind: Literal["job"]
    init: list[V1Init] | None = None
    container: V1Container

    # Node selectors, tolerations, service accounts...: how Kubernetes places a pod, nothing a process uses.
    _ignored = frozenset({"environment"})
    _not_supported = frozenset({"connections", "volumes", "sidecars"})

    @field_validator("kind", mode="before")
    @classmethod
    def _only_jobs(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "job":
            raise ValueError(f"run kind `{v}` is not supported by the bridge; only `job` is")
        return v
