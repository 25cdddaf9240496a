"""An Optuna process killed mid-study (SIGKILL) and started again on the same storage does not run again what it
had sent: Optuna retries the trials the dead process left running (the storage's heartbeat, and
`RetryFailedTrialCallback`), the objective sends each under its first trial's suggestion id, and the bridge
answers with a replayed copy of the run's result. Every suggestion runs once, and has one final result.

The study runs one trial at a time: with several threads, Optuna itself races on a SQLite storage when it retries
(two threads fail the same stale trial and retry it twice, two take the same waiting trial: seen here as
`UpdateFinishedTrialError`). The bridge answers duplicates alike, but the study would end in Optuna's error."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest

from bridge.config.settings import load_settings
from tests.client.client_support import serve_process
from tests.faults.harness import read_to_end
from tests.optuna.optuna_support import executions, final_results, served_config
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]

TrialState = optuna.trial.TrialState
REPO = Path(__file__).resolve().parents[2]
TRIALS = 10
STUDY = "resumed"


def trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)


async def test_a_killed_study_started_again_reuses_the_answers_it_had_sent(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = served_config(tmp_path, kafka_bootstrap)
    topics = load_settings(config).topics
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "tests.optuna.study_job", str(config), storage, STUDY, str(TRIALS), "1"]
    logs = [tmp_path / "optimize-1.log", tmp_path / "optimize-2.log"]

    async with serve_process(config, tmp_path):
        with logs[0].open("wb") as log:
            first = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

        def mid_study() -> bool:
            assert first.poll() is None, logs[0].read_text()
            if not (tmp_path / "study.db").exists():
                return False
            try:
                seen = trials(storage)
            except (KeyError, optuna.exceptions.StorageInternalError):
                return False  # the study is being created
            running = [t for t in seen if t.state == TrialState.RUNNING and "bridge_suggestion_id" in t.user_attrs]
            return sum(t.state.is_finished() for t in seen) >= 3 and len(running) >= 1

        await eventually(mid_study, timeout=180, interval=0.3, in_thread=True, what="the study never got going")
        first.kill()
        first.wait()

        records, problem = await read_to_end(kafka_bootstrap, topics.suggestions)
        assert not problem, problem
        sent = {s["id"] for r in records for s in json.loads(r.value)["suggestions"]}
        told = {t.user_attrs["bridge_suggestion_id"] for t in trials(storage) if t.state.is_finished()}
        untold = sent - told
        assert untold, "the process was killed with suggestions sent and not told to Optuna"
        # The bridge finishes what the dead process sent: then each one's answer can only be a replay.
        await final_results(
            kafka_bootstrap, topics.results, STUDY, lambda rs: untold <= {r["suggestion_id"] for r in rs}
        )

        with logs[1].open("wb") as log:
            second = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        returncode = await asyncio.to_thread(second.wait, 240)
        assert returncode == 0, logs[1].read_text()
        results = await final_results(
            kafka_bootstrap, topics.results, STUDY, lambda rs: sum(not r["replayed"] for r in rs) >= len(sent)
        )

    after = trials(storage)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in after) >= TRIALS
    assert not [t.number for t in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for sid in untold:
        retries = [t for t in after if t.user_attrs.get("bridge_suggestion_id") == sid and t.state.is_finished()]
        retries = [t for t in retries if t.system_attrs.get("retry_history")]
        (retry,) = retries
        assert retry.system_attrs["retry_history"] == [int(sid.removeprefix("trial-"))]
        assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert retry.user_attrs["bridge_replayed"] is True, retry.user_attrs
    runs = Counter(r["run_id"] for r in results if not r["replayed"])
    assert set(runs.values()) == {1}, "one final result per run"
    assert {r["suggestion_id"] for r in results if r["replayed"]} >= untold
    assert set(executions(tmp_path).values()) == {1}, "no suggestion ran twice"
