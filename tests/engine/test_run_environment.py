"""A run's environment is allow-listed: PATH (the bridge's interpreter first), HOME, the locale and the like, what
the config passes through, the template's env and the bridge's per-run variables; never the bridge's settings or
secrets (BRIDGE_*), even when the passthrough names them, nor anything else of the bridge's environment."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from tests.engine_support import Engine

DUMP_ENV = (
    "import json, os; open(os.environ['BRIDGE_OUTPUTS_DIR'] + '/env.json', 'w').write(json.dumps(dict(os.environ)))"
)
PER_RUN = {
    "BRIDGE_RUN_ID",
    "BRIDGE_OPERATION_ID",
    "BRIDGE_ATTEMPT",
    "BRIDGE_METRICS_FILE",
    "BRIDGE_OUTPUTS_DIR",
    "BRIDGE_NODE_ID",
}


def _env_dumper() -> dict[str, Any]:
    return {
        "kind": "component",
        "name": "env-dump",
        "run": {
            "kind": "job",
            "container": {
                "image": "python:3.11",
                "command": ["python3", "-c", DUMP_ENV],
                "env": [{"name": "FROM_TEMPLATE", "value": "t"}],
            },
        },
    }


async def _run_env(engine: Engine, passthrough: tuple[str, ...]) -> dict[str, str]:
    op = engine.operation_of(_env_dumper(), [{}])
    (result,) = (await engine.run(op, runtime=engine.runtime(env_passthrough=passthrough))).results
    assert result.status is RunStatus.SUCCEEDED, result.error
    env: dict[str, str] = json.loads((engine.workdir / "runs" / result.run_id / "outputs" / "env.json").read_text())
    return env


async def test_a_run_sees_no_secret_of_the_bridge_and_what_is_passed_through(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_PASSWORD", "kafka-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("BRIDGE_EXECUTOR__MAX_PARALLEL", "3")
    monkeypatch.setenv("TRAINER_TOKEN", "passed")
    monkeypatch.setenv("DATA_ROOT", "/data")
    monkeypatch.setenv("DATA_CACHE", "/cache")
    monkeypatch.setenv("LC_TIME", "C")
    env = await _run_env(engine, passthrough=("TRAINER_TOKEN", "DATA_*", "BRIDGE_*"))

    assert "kafka-secret" not in env.values() and "aws-secret" not in env.values()
    assert {name for name in env if name.startswith("BRIDGE_")} == PER_RUN
    assert (env["TRAINER_TOKEN"], env["DATA_ROOT"], env["DATA_CACHE"]) == ("passed", "/data", "/cache")
    assert env["FROM_TEMPLATE"] == "t"
    assert env["BRIDGE_NODE_ID"] == socket.gethostname()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["HOME"] == os.environ["HOME"] and env["LC_TIME"] == "C"


async def test_without_passthrough_only_the_allow_list_reaches_a_run(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINER_TOKEN", "not-passed")
    env = await _run_env(engine, passthrough=())
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "VIRTUAL_ENV"}
    allowed |= {"SSL_CERT_FILE", "SSL_CERT_DIR"}
    unexpected = {
        name
        for name in env
        if name not in allowed | PER_RUN | {"FROM_TEMPLATE", "PYTHONUNBUFFERED"} and not name.startswith("LC_")
    }
    # The interpreter may add a variable of its own on start (e.g. LC_CTYPE coercion): none is the bridge's.
    assert unexpected <= {"PWD"}, unexpected
    assert "TRAINER_TOKEN" not in env
