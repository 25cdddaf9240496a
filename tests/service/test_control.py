"""`bridge.control` stops one run or a whole operation from outside (polyaxon#770)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.polling import eventually
from tests.service.service_support import count_results, read_until, running, send_raw, service_settings, suggestion

pytestmark = pytest.mark.kafka


def _control(**fields: object) -> bytes:
    return json.dumps({"schema": "bridge.control/v1", **fields}).encode()


async def test_stop_one_run_by_suggestion_id(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(kafka_bootstrap, tmp_path)
    record = tmp_path / "record"
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [
                suggestion(
                    "s",
                    [{"name": "a", "wait_for": str(gate)}, {"name": "b", "wait_for": str(gate)}],
                    ids=["keep", "drop"],
                )
            ],
            key=b"s",
        )
        await eventually(lambda: len(list(record.glob("*.json"))) == 2, timeout=60)
        await send_raw(
            kafka_bootstrap,
            settings.topics.control,
            [_control(action="stop_run", study="s", suggestion_id="drop", reason="looks hopeless")],
            key=b"s",
        )
        dropped = await read_until(kafka_bootstrap, settings.topics.results, count_results(1), "bridge.result/v1")
        gate.touch()
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    assert dropped[0]["suggestion_id"] == "drop"
    by_id = {r["suggestion_id"]: r for r in results}
    assert by_id["drop"]["status"] == "stopped"
    assert by_id["drop"]["error"]["message"] == "looks hopeless"
    assert by_id["keep"]["status"] == "succeeded"


async def test_stop_a_whole_operation(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "never-opened"
    settings = service_settings(
        kafka_bootstrap,
        tmp_path,
        templates={"job": {**_template(tmp_path), "matrix": {"kind": "mapping", "concurrency": 2}}},
    )
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": f"r{i}", "wait_for": str(gate)} for i in range(4)])],
            key=b"s",
        )
        ops = await read_until(
            kafka_bootstrap, settings.topics.operations, lambda ms: any(m["event"] == "created" for m in ms)
        )
        operation_id = ops[0]["operation_id"]
        await eventually(lambda: len(list((tmp_path / "record").glob("*.json"))) == 2, timeout=60)
        await send_raw(
            kafka_bootstrap,
            settings.topics.control,
            [_control(action="stop_operation", study="s", operation_id=operation_id)],
            key=b"s",
        )
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(4), "bridge.result/v1")
    assert sorted(r["status"] for r in results) == ["skipped", "skipped", "stopped", "stopped"]


async def test_a_bad_control_message_is_dead_lettered(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.control, [_control(action="stop_run", study="s")], key=b"s")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= 1)
    assert letters[0]["error"]["type"] == "invalid_message"
    assert letters[0]["topic"] == settings.topics.control


def _template(root: Path) -> dict[str, object]:
    from tests.engine_support import job_component

    return {"component": job_component(), "params": {"record": {"value": str(root / "record")}}}
