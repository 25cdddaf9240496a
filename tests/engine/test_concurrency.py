"""Concurrency is a cap, observed from the runs themselves: never exceeded, and actually used."""

from __future__ import annotations

from tests.engine_support import Engine, max_overlap


async def test_matrix_concurrency_is_never_exceeded_and_is_used(engine: Engine) -> None:
    op = engine.operation([{"sleep": 0.4} for _ in range(6)], matrix={"concurrency": 2})
    outcome = await engine.run(op)
    assert [r.status.value for r in outcome.results] == ["succeeded"] * 6
    runs = engine.executions()
    assert len(runs) == 6
    assert max_overlap(runs) == 2


async def test_cli_concurrency_overrides_the_file(engine: Engine) -> None:
    op = engine.operation([{"sleep": 0.4} for _ in range(4)], matrix={"concurrency": 4})
    await engine.run(op, concurrency=1)
    assert max_overlap(engine.executions()) == 1


async def test_global_cap_limits_operations_sharing_a_runtime(engine: Engine) -> None:
    import asyncio

    runtime = engine.runtime(max_parallel=2)
    a = engine.operation([{"name": f"a{i}", "sleep": 0.4} for i in range(3)], name="op-a", matrix={"concurrency": 3})
    b = engine.operation([{"name": f"b{i}", "sleep": 0.4} for i in range(3)], name="op-b", matrix={"concurrency": 3})
    await asyncio.gather(engine.run(a, runtime=runtime), engine.run(b, runtime=runtime))
    assert max_overlap(engine.executions()) == 2
