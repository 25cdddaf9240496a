"""termination.maxRetries and termination.timeout."""

from __future__ import annotations

from bridge.contract.results import RunStatus
from tests.engine_support import Engine


async def test_a_failed_run_is_retried_and_succeeds_on_attempt_2(engine: Engine) -> None:
    op = engine.operation([{"fail_before": 2, "values": "0.5"}], termination={"maxRetries": 2})
    (result,) = (await engine.run(op)).results
    assert result.status is RunStatus.SUCCEEDED
    assert result.attempt == 2
    assert result.outputs == {"loss": 0.5}
    assert sorted(e.attempt for e in engine.executions()) == [1, 2]


async def test_retries_are_bounded(engine: Engine) -> None:
    op = engine.operation([{"exitcode": 4}], termination={"maxRetries": 1})
    (result,) = (await engine.run(op)).results
    assert result.status is RunStatus.FAILED
    assert result.attempt == 2
    assert result.error is not None and result.error.type == "exit_code"
    assert "exiting with 4 on purpose" in result.error.message
    assert len(engine.executions()) == 2


async def test_no_retry_without_max_retries(engine: Engine) -> None:
    (result,) = (await engine.run(engine.operation([{"exitcode": 1}]))).results
    assert result.status is RunStatus.FAILED
    assert result.attempt == 1


async def test_a_run_longer_than_the_timeout_is_stopped_and_failed(engine: Engine) -> None:
    op = engine.operation([{"sleep": 60}], termination={"timeout": 1})
    (result,) = (await engine.run(op)).results
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "timeout"
    assert result.duration_s is not None and result.duration_s < 30
    (execution,) = engine.executions()
    assert execution.end is None  # it never reached its end: it was stopped


async def test_a_run_that_reports_no_required_output_fails_clearly(engine: Engine) -> None:
    from tests.engine_support import job_component

    component = job_component()
    component["outputs"] = [{"name": "loss", "type": "float"}]
    op = engine.operation([{"no_outputs": True}], component=component)
    (result,) = (await engine.run(op)).results
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "missing_outputs"
    assert "loss" in result.error.message
