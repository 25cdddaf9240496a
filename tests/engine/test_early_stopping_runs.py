"""Early stopping through the real scheduler: an operation-wide rule stops running runs and skips the rest;
a policy prunes one run and lets the others go on."""

from __future__ import annotations

from bridge.contract.results import RunStatus
from tests.engine_support import Engine


async def test_failure_percent_reached_skips_the_remaining_runs(engine: Engine) -> None:
    op = engine.operation(
        [{"exitcode": 1}, {"exitcode": 1}, {}, {}],
        matrix={"concurrency": 1, "earlyStopping": [{"kind": "failure_early_stopping", "percent": 50}]},
    )
    outcome = await engine.run(op)
    assert [r.status for r in outcome.results] == [
        RunStatus.FAILED,
        RunStatus.FAILED,
        RunStatus.SKIPPED,
        RunStatus.SKIPPED,
    ]
    assert outcome.early_stop is not None and outcome.early_stop.kind == "failure_early_stopping"
    assert len(engine.executions()) == 2


async def test_failure_percent_not_reached_runs_everything(engine: Engine) -> None:
    op = engine.operation(
        [{"exitcode": 1}, {}, {}, {}],
        matrix={"concurrency": 1, "earlyStopping": [{"kind": "failure_early_stopping", "percent": 50}]},
    )
    outcome = await engine.run(op)
    assert outcome.early_stop is None
    assert [r.status for r in outcome.results].count(RunStatus.SUCCEEDED) == 3


async def test_metric_threshold_reached_stops_running_and_skips_pending(engine: Engine) -> None:
    gate = engine.root / "never-opened"
    rule = {"kind": "metric_early_stopping", "metric": "loss", "value": 0.2, "optimization": "minimize"}
    op = engine.operation(
        [{"wait_for": str(gate)}, {"values": "0.5,0.1"}, {}, {}],
        matrix={"concurrency": 2, "earlyStopping": [rule]},
    )
    outcome = await engine.run(op)
    statuses = [r.status for r in outcome.results]
    assert statuses == [RunStatus.STOPPED, RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert outcome.early_stop is not None and "loss" in outcome.early_stop.reason
    stopped = outcome.results[0]
    assert stopped.error is not None and stopped.error.type == "early_stopped"


async def test_metric_threshold_not_reached_runs_everything(engine: Engine) -> None:
    rule = {"kind": "metric_early_stopping", "metric": "loss", "value": 0.2, "optimization": "minimize"}
    op = engine.operation([{"values": "0.5,0.3"}, {"values": "0.4"}], matrix={"earlyStopping": [rule]})
    outcome = await engine.run(op)
    assert outcome.early_stop is None
    assert all(r.status is RunStatus.SUCCEEDED for r in outcome.results)


async def test_maximize_threshold(engine: Engine) -> None:
    rule = {"kind": "metric_early_stopping", "metric": "acc", "value": 0.9, "optimization": "maximize"}
    component_values = [{"values": "0.95"}, {"values": "0.5"}]
    op = engine.operation(component_values, matrix={"concurrency": 1, "earlyStopping": [rule]})
    # the job reports under --metric, default "loss": use params to rename it through the values string
    outcome = await engine.run(op)
    assert outcome.early_stop is None  # metric "acc" is never reported by these runs: nothing fires


async def test_median_policy_prunes_a_run_worse_than_the_median(engine: Engine) -> None:
    good = "0.9,0.7,0.5,0.4,0.3,0.25,0.2,0.18,0.16,0.15"
    bad = "1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5,1.5"
    rule = {
        "kind": "metric_early_stopping",
        "metric": "loss",
        "optimization": "minimize",
        "policy": {"kind": "median", "evaluationInterval": 1, "minInterval": 2, "minSamples": 2},
    }
    op = engine.operation(
        [{"values": good}, {"values": good.replace("0.1", "0.11")}, {"values": bad, "step_sleep": 0.3}],
        matrix={"concurrency": 1, "earlyStopping": [rule]},
    )
    outcome = await engine.run(op)
    first, second, pruned = outcome.results
    assert first.status is second.status is RunStatus.SUCCEEDED
    assert pruned.status is RunStatus.STOPPED
    assert pruned.error is not None and pruned.error.type == "early_stopped" and "median" in pruned.error.message
    assert outcome.early_stop is None  # a pruned run does not stop the operation
    (bad_run,) = engine.executions("r2")
    assert bad_run.end is None  # it was stopped before its last step
