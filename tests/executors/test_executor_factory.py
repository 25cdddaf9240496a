"""`executor.kind` chooses the executor in one factory (`bridge.app.build_executor`), for `run` and `serve`:
`ray` without Ray installed, or without an address, is one clear config error, never local processes instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.app import build_executor
from bridge.config.sections import ExecutorSettings
from bridge.errors import ConfigError
from bridge.executors.local import LocalExecutor


def test_local_is_the_default(tmp_path: Path) -> None:
    assert isinstance(build_executor(ExecutorSettings(), workdir=tmp_path), LocalExecutor)


def test_ray_without_ray_installed_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    monkeypatch.delitem(sys.modules, "bridge.executors.ray", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'suggestion-bridge\[ray\]'"):
        build_executor(ExecutorSettings(kind="ray", address="127.0.0.1:6379"), workdir=tmp_path)


def test_ray_without_an_address_says_where_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="RAY_ADDRESS"):
        build_executor(ExecutorSettings(kind="ray"), workdir=tmp_path)


def test_ray_takes_ray_address_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    executor = build_executor(ExecutorSettings(kind="ray", max_parallel=64), workdir=tmp_path)
    assert type(executor).__name__ == "RayExecutor" and executor.max_parallel == 64


def test_the_ray_executor_logs_configured_when_bridge_run_configures_logging_lazily(tmp_path: Path) -> None:
    # ray.py logs through structlog directly; `bridge run` configures structlog only when it first logs. Built
    # through the factory, the executor must never log unconfigured (every level, on stdout): in a fresh process,
    # as structlog's configuration is the process's.
    pytest.importorskip("ray")
    probe = f"""
import sys
from pathlib import Path
from bridge import logs
from bridge.app import build_executor
from bridge.config.sections import ExecutorSettings
logs.configure(None, lazy=True)
assert "structlog" not in sys.modules
build_executor(ExecutorSettings(kind="ray", address="127.0.0.1:1"), workdir=Path({str(tmp_path)!r}))
import structlog
structlog.get_logger("bridge.executors.ray").info("below_the_level")
structlog.get_logger("bridge.executors.ray").warning("at_the_level")
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert "at_the_level" in out.stderr and "at_the_level" not in out.stdout
    assert "below_the_level" not in out.stdout + out.stderr
