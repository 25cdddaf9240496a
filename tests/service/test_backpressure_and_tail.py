"""Past max_in_flight runs the bridge stops taking suggestions until runs finish; `bridge tail` follows results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.service.service import BridgeService
from tests.polling import eventually
from tests.service.service_support import count_results, read_until, running, send_raw, service_settings, suggestion

pytestmark = pytest.mark.kafka


def _lag(service: BridgeService) -> float:
    lines = service.telemetry.render()[0].decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("bridge_consumer_lag{"))


async def test_lag_counts_the_records_waiting_while_paused(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(
        kafka_bootstrap, tmp_path, max_in_flight=2, batching={"linger_ms": 0}, kafka={"topic_partitions": 1}
    )
    async with running(settings) as service:
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": f"r{i}", "wait_for": str(gate)}]) for i in range(6)],
            key=b"s",
        )
        await eventually(lambda: b"bridge_consumer_paused 1.0" in service.telemetry.render()[0], timeout=60)
        # two records are running; the four behind them are the backlog an autoscaler must see
        await eventually(lambda: _lag(service) == 4, timeout=30)
        gate.touch()
        await read_until(kafka_bootstrap, settings.topics.results, count_results(6), "bridge.result/v1")
        await eventually(lambda: _lag(service) == 0, timeout=30)


async def test_consumption_pauses_past_max_in_flight_and_resumes(kafka_bootstrap: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    settings = service_settings(kafka_bootstrap, tmp_path, max_in_flight=2, batching={"linger_ms": 0})
    record = tmp_path / "record"
    async with running(settings) as service:
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": f"r{i}", "wait_for": str(gate)}]) for i in range(5)],
            key=b"s",
        )
        await eventually(lambda: len(list(record.glob("*.json"))) == 2, timeout=60)
        await eventually(lambda: b"bridge_consumer_paused 1.0" in service.telemetry.render()[0], timeout=60)
        metrics = service.telemetry.render()[0].decode()
        accepted = [
            line
            for line in metrics.splitlines()
            if line.startswith("bridge_suggestions_received_total") and 'outcome="accepted"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in accepted) == 2  # nothing more was taken
        assert "bridge_runs_in_flight 2.0" in metrics
        gate.touch()
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(5), "bridge.result/v1")
    assert sorted(r["params"]["name"] for r in results) == [f"r{i}" for i in range(5)]


async def test_tail_prints_results_as_json_lines(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    async with running(settings):
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("tailed", [{"name": "a"}, {"name": "b"}])],
            key=b"tailed",
        )
        await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "tail",
            "-c",
            str(tmp_path / "bridge.yaml"),
            "--study",
            "tailed",
            "--from-beginning",
            "--output",
            "jsonl",
            "--limit",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    results = [m for m in lines if m["schema"] == "bridge.result/v1"]
    assert sorted(r["params"]["name"] for r in results) == ["a", "b"]
    assert all(m["study"] == "tailed" for m in lines)
