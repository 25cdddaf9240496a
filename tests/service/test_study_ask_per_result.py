"""`Study`: an optimizer asks one new suggestion per result, keeping N in flight, on the real broker (issue 9, P5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.client import ResultsTimeout, Study
from tests.service.service_support import running, service_settings

pytestmark = pytest.mark.kafka


async def test_one_new_suggestion_per_result_keeps_four_in_flight(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 0})
    total, in_flight = 10, 4
    asked: dict[str, str] = {}
    order: list[str] = []
    async with running(settings), Study(settings, study="s-async", template="job") as study:
        # The first trial is slow: results of the others must not wait for it.
        asked[await study.ask({"name": "slow", "values": "0.9", "sleep": 3.0})] = "slow"
        for n in range(1, in_flight):
            asked[await study.ask({"name": f"t{n}", "values": f"0.{n}"})] = f"t{n}"
        peak = study.in_flight
        async for result in study.results(timeout=60):
            order.append(asked[str(result.suggestion_id)])
            assert result.status.value == "succeeded"
            name = asked[str(result.suggestion_id)]
            assert result.params["name"] == name
            if len(asked) < total:
                n = len(asked)
                asked[await study.ask({"name": f"t{n}", "values": f"0.{n}"})] = f"t{n}"
            peak = max(peak, study.in_flight)
        assert study.in_flight == 0
    assert sorted(order) == sorted(asked.values())  # one result for every suggestion, none twice
    assert peak == in_flight
    assert order[-1] == "slow"  # the others streamed past it
    assert len(order) == total


async def test_a_result_that_does_not_come_names_what_is_missing(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path, batching={"linger_ms": 0})
    async with running(settings), Study(settings, study="s-timeout", template="job") as study:
        sid = await study.ask({"name": "long", "sleep": 8.0})
        with pytest.raises(ResultsTimeout) as caught:
            await study.next_result(timeout=1.0)
    assert caught.value.missing == [sid]
