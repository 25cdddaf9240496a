"""A template from outside cannot spin or fill memory: each run renders within a time and size budget."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import RenderBudget, RunGlobals, V1Component, parse_operation, render_run
from tests.polyaxon.support import component, operation

GLOBALS = RunGlobals(run_uuid="u", run_name="n", artifacts_path="/w/u", run_outputs_path="/w/u/outputs")
NESTED_RANGES = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}x"
SPINNING_MACRO = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}x"


def inline(args: list[str], runs: int = 1) -> dict[str, Any]:
    return operation([{"n": i} for i in range(runs)], component=component([{"name": "n", "type": "int"}], args=args))


@pytest.mark.parametrize("template", [NESTED_RANGES, SPINNING_MACRO], ids=["nested-range", "macro"])
def test_a_spinning_template_stops_within_the_budget_for_all_runs_at_once(template: str) -> None:
    started = time.monotonic()

    with pytest.raises(PolyaxonfileError, match=r"longer than its budget of 0\.3 s") as caught:
        parse_operation(
            inline([template], runs=50), source="message", base_dir=None, render_budget=RenderBudget(timeout_s=0.3)
        )

    # One budget for the fifty runs, not fifty: once a run ran out of time the others fail at once.
    assert time.monotonic() - started < 1.5
    assert caught.value.path == "component.run.container.args[0]"


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ 'x' * 1000000000 }}", "more than its budget of 1000000 characters"),
        ("{{ 'x' * n * 1000000000 }}", "more than its budget of 1000000 characters"),
        ("{{ '%0999999999d' % n }}", "format width"),
        ("{{ '{:>999999999}'.format(n) }}", "format width"),
        ("{{ 'x'.ljust(1000000000) }}", "larger than 10000"),
        ("{{ 'x' | center(1000000000) }}", "larger than 10000"),
        ("{{ 9 ** 99999999 }}", "more than 10000 digits"),
        ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "budget"),
        ("{% set a = 'y' * 999999 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c ~ c }}", "budget"),
        ("{{ (['y' * 999999] * 1000) | join }}", "budget"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ],
    ids=[
        "repeat",
        "repeat-param",
        "percent",
        "format",
        "ljust",
        "center",
        "power",
        "doubling",
        "chain",
        "join",
        "self",
    ],
)
def test_a_template_that_builds_a_huge_value_is_refused_before_it_does(template: str, why: str) -> None:
    comp = V1Component.model_validate(component([{"name": "n", "type": "int"}], args=[template]))
    started = time.monotonic()

    with pytest.raises(PolyaxonfileError, match=why):
        render_run(comp, {"n": 1}, GLOBALS, budget=RenderBudget(timeout_s=5, max_chars=1_000_000))

    assert time.monotonic() - started < 1


def test_render_run_takes_a_time_budget() -> None:
    comp = V1Component.model_validate(component(args=[NESTED_RANGES]))
    started = time.monotonic()

    with pytest.raises(PolyaxonfileError, match=r"longer than its budget of 0\.2 s"):
        render_run(comp, {}, GLOBALS, budget=RenderBudget(timeout_s=0.2))

    assert time.monotonic() - started < 1


def test_ordinary_templates_render_as_before_within_the_budget() -> None:
    args = ["{% for i in range(n) %}{{ i }}{% endfor %}", "{{ '%03d' % n }}", "{{ ['a', 'b'] | join(',') ~ '!' }}"]
    comp = V1Component.model_validate(component([{"name": "n", "type": "int"}], args=args))

    run = render_run(comp, {"n": 3}, GLOBALS, budget=RenderBudget(timeout_s=0.5, max_chars=100))

    assert run.argv == ["echo", "012", "003", "a,b!"]
