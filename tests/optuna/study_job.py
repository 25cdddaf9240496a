"""An Optuna study of the test job through `bridge serve`, as a user writes it, runnable as a process of its own
(`python -m tests.optuna.study_job CONFIG STORAGE STUDY TRIALS N_JOBS`) so that a test can kill it and start it again.

Each trial draws `x`; its run reports `loss = x + 1/(step+1)` for 10 steps of 0.3 s (what the pruner compares),
then works 1 s more, so that a stop decided at its last step still finds it running.
The storage makes the study resumable: its heartbeat marks the trials of a process that died as failed, and
`RetryFailedTrialCallback` asks them again with their params; the objective sends each under its first trial's
id, so the bridge answers it from the run it started then.
"""

from __future__ import annotations

import sys
from typing import Any

import optuna

from bridge.optuna import BridgeObjective

STEPS = 10
STEP_SLEEP_S = 0.3


def space(trial: optuna.Trial) -> dict[str, Any]:
    """The job's params for one trial, named after `x` so that the executions of each suggestion are counted."""
    x = trial.suggest_float("x", 0.0, 1.0)
    values = ",".join(f"{x + 1 / (s + 1):.6f}" for s in range(STEPS))
    return {"name": f"x{x!r}", "values": values, "step_sleep": STEP_SLEEP_S, "sleep": 1.0}


def space_with_failures(trial: optuna.Trial) -> dict[str, Any]:
    """`space`, but a trial whose number ends in 7 fails at once (its run exits with status 3)."""
    if trial.number % 10 == 7:
        return {"name": f"fails-{trial.number}", "exitcode": 3}
    return space(trial)


def pruner() -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)


def main(config: str, storage_url: str, study_name: str, trials: int, n_jobs: int) -> int:
    """Run the study until `trials` trials are COMPLETE or PRUNED (in this process or an earlier one)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        storage_url,
        heartbeat_interval=1,
        grace_period=2,
        failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=3),
        engine_kwargs={"connect_args": {"timeout": 60}},  # four trial threads and their heartbeats share one file
    )
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=6),
        pruner=pruner(),
    )
    done = optuna.study.MaxTrialsCallback(
        trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    with BridgeObjective("job", space=space, metric="loss", config=config, timeout_s=120) as objective:
        study.optimize(objective, n_trials=10 * trials, n_jobs=n_jobs, callbacks=[done])
    return 0


if __name__ == "__main__":
    config, storage_url, study_name, trials, n_jobs = sys.argv[1:]
    sys.exit(main(config, storage_url, study_name, int(trials), int(n_jobs)))
