"""`study.optimize(BridgeObjective(...), n_trials=40, n_jobs=4)` with a MedianPruner, through the real broker and
a real `bridge serve`: every trial ends COMPLETE (its run succeeded), PRUNED (its run stopped: `stopped` on the
results topic) or FAIL (its run failed, the reason in the trial); none is lost and none runs twice (one final
result per run, one execution per suggestion)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import optuna
import pytest

from bridge.config.settings import load_settings
from bridge.optuna import BridgeObjective
from tests.client.client_support import serve_process
from tests.optuna.optuna_support import executions, final_results, served_config
from tests.optuna.study_job import pruner, space_with_failures

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TrialState = optuna.trial.TrialState
TRIALS = 40


async def test_every_trial_ends_once_complete_pruned_or_failed(kafka_bootstrap: str, tmp_path: Path) -> None:
    config = served_config(tmp_path, kafka_bootstrap)
    study = optuna.create_study(
        study_name="median", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=6), pruner=pruner()
    )
    async with serve_process(config, tmp_path):
        with BridgeObjective(
            "job", space=space_with_failures, metric="loss", config=config, timeout_s=120
        ) as objective:
            await asyncio.to_thread(study.optimize, objective, n_trials=TRIALS, n_jobs=4)
        topic = load_settings(config).topics.results
        results = await final_results(kafka_bootstrap, topic, "median", lambda rs: len(rs) >= TRIALS)

    assert len(study.trials) == TRIALS
    states = Counter(t.state for t in study.trials)
    assert set(states) == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}, states
    assert states[TrialState.FAIL] == 4  # trials 7, 17, 27 and 37, which exit with status 3

    runs = Counter(r["run_id"] for r in results if not r["replayed"])
    assert len(runs) == TRIALS and set(runs.values()) == {1}, "one final result per trial's run"
    by_run = {r["run_id"]: r for r in results}
    for trial in study.trials:
        result = by_run[trial.user_attrs["bridge_run_id"]]
        assert result["suggestion_id"] == f"trial-{trial.number}"
        if trial.state == TrialState.COMPLETE:
            assert result["status"] == "succeeded" and trial.value == result["outputs"]["loss"]
        elif trial.state == TrialState.PRUNED:
            assert result["status"] == "stopped", result
            assert result["error"]["type"] == "stopped"
            assert trial.user_attrs["bridge_status"] == "stopped"
        else:
            assert result["status"] == "failed"
            assert trial.user_attrs["bridge_error"].startswith("exit_code")
    assert set(executions(tmp_path).values()) == {1}, "every suggestion ran once"
    assert sum(executions(tmp_path).values()) == TRIALS
