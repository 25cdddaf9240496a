"""A bridge that cannot be reached is one clear error after the connect timeout, naming where it looked; every
later trial gets it at once. And `import bridge` (the CLI, the client) never imports Optuna."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest

from bridge.optuna import BridgeObjective, BridgeUnreachable
from tests.kafka_broker import _free_ports


def test_no_broker_is_a_clear_error_after_the_connect_timeout() -> None:
    (port,) = _free_ports(1)
    objective = BridgeObjective("job", space=lambda t: {"x": 1}, config=f"127.0.0.1:{port}", connect_timeout_s=2)
    study = optuna.create_study(study_name="nobody")
    started = time.monotonic()
    try:
        with pytest.raises(BridgeUnreachable, match=rf"cannot reach the bridge at 127\.0\.0\.1:{port} within 2 s"):
            study.optimize(objective, n_trials=5, n_jobs=2)
    finally:
        objective.close()

    assert time.monotonic() - started < 30
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials)


def test_importing_the_bridge_never_imports_optuna() -> None:
    code = "import sys, bridge, bridge.client, bridge.cli.main; sys.exit('optuna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
