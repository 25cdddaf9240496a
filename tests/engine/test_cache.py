"""The cache: on by default, answered at once with cached=true, bounded by ttl, off with disable, keyed by io."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.engine.cache import FileCache
from tests.engine_support import Engine, job_component


async def test_same_params_in_another_operation_are_answered_from_the_cache(engine: Engine) -> None:
    first = await engine.run(engine.operation([{"name": "x", "values": "0.3"}], name="first"))
    second = await engine.run(engine.operation([{"name": "x", "values": "0.3"}], name="second"))
    assert first.results[0].cached is False
    hit = second.results[0]
    assert hit.cached is True
    assert hit.status is RunStatus.SUCCEEDED
    assert hit.outputs == {"loss": 0.3}
    assert hit.operation_id != first.results[0].operation_id
    assert len(engine.executions()) == 1


async def test_an_expired_entry_is_not_used(engine: Engine) -> None:
    now = [time.time()]
    cache = FileCache(engine.workdir / "cache", clock=lambda: now[0])
    op1 = engine.operation([{"name": "x"}], name="first", cache={"ttl": 60})
    await engine.run(op1, runtime=engine.runtime(cache=cache))
    now[0] += 30
    hit = await engine.run(
        engine.operation([{"name": "x"}], name="second", cache={"ttl": 60}),
        runtime=engine.runtime(cache=cache),
    )
    assert hit.results[0].cached is True
    now[0] += 61
    miss = await engine.run(
        engine.operation([{"name": "x"}], name="third", cache={"ttl": 60}),
        runtime=engine.runtime(cache=cache),
    )
    assert miss.results[0].cached is False
    assert len(engine.executions()) == 2


async def test_disable_turns_the_cache_off(engine: Engine) -> None:
    await engine.run(engine.operation([{"name": "x"}], name="first"))
    again = await engine.run(engine.operation([{"name": "x"}], name="second", cache={"disable": True}))
    assert again.results[0].cached is False
    assert len(engine.executions()) == 2


async def test_io_restricts_the_key_to_the_named_inputs(engine: Engine) -> None:
    await engine.run(engine.operation([{"name": "x", "sleep": 0.0}], name="first", cache={"io": ["name"]}))
    other_sleep = engine.operation([{"name": "x", "sleep": 0.01}], name="second", cache={"io": ["name"]})
    assert (await engine.run(other_sleep)).results[0].cached is True


async def test_failed_runs_are_not_cached(engine: Engine) -> None:
    await engine.run(engine.operation([{"name": "x", "exitcode": 2}], name="first"))
    again = await engine.run(engine.operation([{"name": "x", "exitcode": 2}], name="second"))
    assert again.results[0].cached is False
    assert len(engine.executions()) == 2


async def test_identical_params_in_one_operation_run_once(engine: Engine) -> None:
    outcome = await engine.run(engine.operation([{"name": "same", "sleep": 0.3}] * 3))
    assert [r.status for r in outcome.results] == [RunStatus.SUCCEEDED] * 3
    assert sorted(r.cached for r in outcome.results) == [False, True, True]
    assert len(engine.executions()) == 1


def _input(component: dict[str, Any], name: str) -> dict[str, Any]:
    return next(io for io in component["inputs"] if io["name"] == name)


def _arg_format(c: dict[str, Any]) -> None:
    _input(c, "sleep")["argFormat"] = "--sleep {{ sleep }}"


def _is_flag(c: dict[str, Any]) -> None:
    _input(c, "verbose")["isFlag"] = False


def _component() -> dict[str, Any]:
    """The job component with one more flag, which its args leave out (so either spelling of it runs)."""
    component = job_component()
    component["inputs"].append({"name": "verbose", "type": "bool", "value": False, "isOptional": True, "isFlag": True})
    return component


def _to_env(c: dict[str, Any]) -> None:
    _input(c, "sleep")["toEnv"] = "JOB_SLEEP"


def _working_dir(c: dict[str, Any]) -> None:
    c["run"]["container"]["workingDir"] = "."


@pytest.mark.parametrize("change", [_arg_format, _is_flag, _to_env, _working_dir])
async def test_components_that_differ_only_in_how_inputs_reach_the_run_do_not_share_results(
    engine: Engine, change: Callable[[dict[str, Any]], None]
) -> None:
    values = [{"name": "x", "values": "0.3"}]
    await engine.run(engine.operation_of(_component(), [{**values[0], "record": str(engine.record)}], name="a"))
    other = _component()
    change(other)

    second = await engine.run(engine.operation_of(other, [{**values[0], "record": str(engine.record)}], name="b"))
    again = await engine.run(engine.operation_of(other, [{**values[0], "record": str(engine.record)}], name="c"))

    assert second.results[0].cached is False
    assert again.results[0].cached is True  # the changed component hits its own entry
    assert len(engine.executions()) == 2
