"""What a trial becomes from its run's final result: COMPLETE with the metric's value (a tuple of values, one
per objective, for a multi-objective study), FAIL with the reason in `bridge_error` for a failed run or a
suggestion the bridge refused (the study goes on), PRUNED for a run stopped by the bridge's early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest

from bridge.optuna import BridgeObjective
from tests.optuna.fake_bridge import FakeBridge, Script

TrialState = optuna.trial.TrialState


def optimize(
    script: Callable[[dict[str, Any]], Script], n_trials: int, **kwargs: Any
) -> tuple[optuna.Study, FakeBridge]:
    bridge = FakeBridge(script)
    directions = kwargs.pop("directions", ["minimize"])
    study = optuna.create_study(study_name="outcomes", directions=directions)
    try:
        objective = BridgeObjective(
            "job",
            space=lambda t: {"x": t.suggest_int("x", 0, 9)},
            bootstrap_servers="127.0.0.1:9",
            client=bridge,
            **kwargs,
        )
        study.optimize(objective, n_trials=n_trials)
    finally:
        bridge.close()
    return study, bridge


def test_a_succeeded_run_completes_its_trial_with_the_metric() -> None:
    study, bridge = optimize(lambda p: Script(outputs={"loss": p["x"] / 10, "accuracy": 0.9}), n_trials=3)

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert [t.value for t in study.trials] == [t.params["x"] / 10 for t in study.trials]
    assert [m.suggestions[0].id for m in bridge.sent] == ["trial-0", "trial-1", "trial-2"]
    assert {m.study for m in bridge.sent} == {"outcomes"}
    assert study.trials[0].user_attrs["bridge_run_id"] == "run-trial-0"
    assert "bridge_warnings" not in study.trials[0].user_attrs  # none: nothing to warn of


def test_a_results_warnings_are_kept_with_its_trial() -> None:
    said = "params.x: the template `job` declares no `x`; the run gets it as a context param only"
    study, _ = optimize(lambda p: Script(outputs={"loss": 0.5}, warnings=[said]), n_trials=2)

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["bridge_warnings"] for t in study.trials] == [[said]] * 2


def test_a_multi_objective_study_gets_one_value_per_metric_in_its_order() -> None:
    study, _ = optimize(
        lambda p: Script(outputs={"loss": 0.25, "latency": 12.0}),
        n_trials=2,
        metric=["loss", "latency"],
        directions=["minimize", "minimize"],
    )

    assert [t.values for t in study.trials] == [[0.25, 12.0], [0.25, 12.0]]


def test_one_metric_per_direction_or_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"the study has 2 objective\(s\) and metric= names 1 \(loss\)"):
        optimize(lambda p: Script(outputs={"loss": 0.1}), n_trials=1, directions=["minimize", "maximize"])


def test_a_failed_run_fails_its_trial_with_the_reason_and_the_study_goes_on() -> None:
    def script(params: dict[str, Any]) -> Script:
        if params["x"] % 2:
            return Script(status="failed", error={"type": "exit_code", "message": "the run exited with status 3"})
        return Script(outputs={"loss": 0.5})

    study, _ = optimize(script, n_trials=6)

    assert len(study.trials) == 6
    for trial in study.trials:
        if trial.params["x"] % 2:
            assert trial.state == TrialState.FAIL
            assert trial.user_attrs["bridge_error"] == "exit_code: the run exited with status 3"
            assert trial.user_attrs["bridge_status"] == "failed"
        else:
            assert trial.state == TrialState.COMPLETE


def test_a_suggestion_the_bridge_refused_fails_its_trial_with_the_field_said_once() -> None:
    refusal = {
        "type": "invalid_params",
        "message": "suggestions[0].params.x: not an int",
        "field": "suggestions[0].params.x",
    }
    study, _ = optimize(lambda p: Script(status="failed", error=refusal), n_trials=1)

    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["bridge_error"] == "invalid_params at suggestions[0].params.x: not an int"


def test_a_run_without_the_metric_fails_its_trial_naming_the_outputs_it_has() -> None:
    study, _ = optimize(lambda p: Script(outputs={"los": 0.1}), n_trials=1)

    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["bridge_error"] == "the run has no output `loss` (its outputs: los); did you mean `los`?"


def test_a_run_the_bridges_early_stopping_stopped_is_pruned() -> None:
    early = {"type": "early_stopped", "message": "median policy: worse than the median at step 2"}
    study, _ = optimize(lambda p: Script(status="stopped", error=early), n_trials=1)

    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["bridge_error"].startswith("early_stopped: median policy")


def test_nan_is_never_a_completed_value() -> None:
    study, _ = optimize(lambda p: Script(outputs={"loss": math.inf}), n_trials=1)

    assert study.trials[0].state == TrialState.FAIL
    assert "not a finite number" in study.trials[0].user_attrs["bridge_error"]
