"""The study's pruner decides from the run's intermediate values as they come (`trial.report`), and a trial it
prunes has its run stopped through the bridge: the trial ends PRUNED once the run's `stopped` result came. A
trial that outlives its `timeout_s` has its run stopped too, and FAILs saying so."""

from __future__ import annotations

import optuna

from bridge.optuna import BridgeObjective
from tests.optuna.fake_bridge import FakeBridge, Script

TrialState = optuna.trial.TrialState


def test_the_pruner_stops_the_remote_run_and_the_trial_is_pruned() -> None:
    bridge = FakeBridge(lambda p: Script(values=[0.4, 0.3, 5.0], hang=True))
    study = optuna.create_study(study_name="pruned", pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    try:
        objective = BridgeObjective("job", space=lambda t: {"x": 1}, bootstrap_servers="127.0.0.1:9", client=bridge)
        study.optimize(objective, n_trials=2)
    finally:
        bridge.close()

    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert bridge.stops == ["trial-0", "trial-1"]
    trial = study.trials[0]
    assert trial.intermediate_values == {0: 0.4, 1: 0.3, 2: 5.0}
    assert trial.user_attrs["bridge_status"] == "stopped"
    assert trial.user_attrs["bridge_run_id"] == "run-trial-0"


def test_a_trial_past_its_timeout_fails_and_its_run_is_stopped() -> None:
    bridge = FakeBridge(lambda p: Script(values=[0.4], hang=True))
    study = optuna.create_study(study_name="slow")
    try:
        objective = BridgeObjective(
            "job", space=lambda t: {"x": 1}, bootstrap_servers="127.0.0.1:9", client=bridge, timeout_s=0.5
        )
        study.optimize(objective, n_trials=1)
    finally:
        bridge.close()

    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["bridge_error"] == "no result within timeout_s=0.5 s; the run was asked to stop"
    assert bridge.stops == ["trial-0"]
