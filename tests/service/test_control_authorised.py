"""Control is authorised: a stop must name the study of what it stops, and with `control.token` configured it must
carry the token; any other stop is a dead letter and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.service.intake import run_id_of
from tests.polling import eventually
from tests.service.service_support import (
    count_results,
    read_until,
    running,
    send_raw,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


def _control(**fields: object) -> bytes:
    return json.dumps({"schema": "bridge.control/v1", **fields}).encode()


async def _start_gated(kafka_bootstrap: str, topic: str, tmp_path: Path, gate: Path, ids: list[str]) -> None:
    """Runs of study `s`, one per id, each waiting for `gate`; returns once they all run."""
    params = [{"name": i, "wait_for": str(gate)} for i in ids]
    await send_raw(kafka_bootstrap, topic, [suggestion("s", params, ids=ids)], key=b"s")
    await eventually(lambda: len(list((tmp_path / "record").glob("*.json"))) == len(ids), timeout=60)


async def test_a_stop_naming_another_study_is_refused(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        await _start_gated(kafka_bootstrap, settings.topics.suggestions, tmp_path, gate, ["victim"])
        ops = await read_until(
            kafka_bootstrap, settings.topics.operations, lambda ms: any(m["event"] == "created" for m in ms)
        )
        # The other study's writer knows the run id (deterministic) and the operation id (public).
        await send_raw(
            kafka_bootstrap,
            settings.topics.control,
            [
                _control(action="stop_run", study="other", run_id=run_id_of("s", "job", "victim")),
                _control(action="stop_operation", study="other", operation_id=ops[0]["operation_id"]),
            ],
            key=b"other",
        )
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 2)
        gate.touch()
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
    assert [(r["suggestion_id"], r["status"]) for r in results] == [("victim", "succeeded")]
    assert [(m["error"]["type"], m["error"]["field"]) for m in letters] == [("control_refused", "study")] * 2
    assert all(m["topic"] == settings.topics.control for m in letters)


async def test_with_a_token_configured_only_a_stop_carrying_it_is_obeyed(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(kafka_bootstrap, tmp_path, control={"token": "s3cret-token"})
    async with running(settings):
        await _start_gated(kafka_bootstrap, settings.topics.suggestions, tmp_path, gate, ["spared", "doomed"])
        await send_raw(
            kafka_bootstrap,
            settings.topics.control,
            [
                _control(action="stop_run", study="s", suggestion_id="spared", reason="no token"),
                _control(action="stop_run", study="s", suggestion_id="spared", reason="wrong", token="guess"),
                _control(action="stop_run", study="s", suggestion_id="doomed", reason="right", token="s3cret-token"),
            ],
            key=b"s",
        )
        # The control messages are handled in order: once `doomed` is stopped, the two before it were refused.
        stopped = await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 2)
        gate.touch()
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    assert [(r["suggestion_id"], r["status"]) for r in stopped] == [("doomed", "stopped")]
    assert stopped[0]["error"]["message"] == "right"
    by_id = {r["suggestion_id"]: r for r in results}
    assert by_id["spared"]["status"] == "succeeded"
    assert [(m["error"]["type"], m["error"]["field"]) for m in letters] == [("control_unauthorized", "token")] * 2
    assert all("s3cret-token" not in json.dumps(m) for m in letters)
