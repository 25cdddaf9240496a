"""A polyaxonfile may type "1e999" as a float: its run still runs, and is cached like any other (hashing its
params must not refuse a non-finite number; only messages from a topic are refused one, at intake)."""

from __future__ import annotations

from typing import Any

from bridge.contract.results import RunStatus
from tests.engine_support import Engine, job_component


def _component() -> dict[str, Any]:
    component = job_component()
    component["inputs"].append({"name": "scale", "type": "float"})
    return component


async def test_a_float_param_of_1e999_runs_and_a_second_operation_hits_the_cache(engine: Engine) -> None:
    values = [{"name": "x", "record": str(engine.record), "values": "0.3", "scale": "1e999"}]
    first = await engine.run(engine.operation_of(_component(), values, name="first"))
    second = await engine.run(engine.operation_of(_component(), values, name="second"))
    assert first.results[0].status is RunStatus.SUCCEEDED
    assert first.results[0].params["scale"] == float("inf")
    assert second.results[0].cached is True
    assert len(engine.executions()) == 1
