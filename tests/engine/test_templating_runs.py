"""Runs never go through a shell: what a template renders is exactly one argv element of the real process."""

from __future__ import annotations

from tests.engine_support import Engine


async def test_a_hostile_value_arrives_as_one_argument(engine: Engine) -> None:
    hostile = '"; rm -rf ~ $(touch pwned) `touch pwned2` | tee x'
    (result,) = (await engine.run(engine.operation([{"name": "h", "values": hostile.replace(",", "")}]))).results
    # `values` is parsed by the job as floats, so it fails; what matters is the argv it received.
    (execution,) = engine.executions()
    assert f"--values={hostile}" in execution.argv
    assert not (engine.root / "pwned").exists()
    assert not (engine.root / "pwned2").exists()
    assert result.status.value == "failed"


async def test_each_run_gets_its_bridge_environment(engine: Engine) -> None:
    (result,) = (await engine.run(engine.operation([{"name": "env"}]))).results
    (execution,) = engine.executions()
    assert execution.env["BRIDGE_RUN_ID"] == result.run_id
    assert execution.env["BRIDGE_METRICS_FILE"].endswith("metrics.jsonl")
    assert execution.env["BRIDGE_OUTPUTS_DIR"].endswith("outputs")
