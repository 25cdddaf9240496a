"""The bridge's Prometheus metrics: what each Telemetry call records, and /metrics serving it over HTTP."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.telemetry import OTHER, Telemetry

METRIC_NAMES = (
    "bridge_suggestions_received",
    "bridge_runs_finished",
    "bridge_run_duration_seconds",
    "bridge_operation_batch_size",
    "bridge_runs_in_flight",
    "bridge_consumer_lag",
    "bridge_dead_letters",
    "bridge_publish_transactions",
    "bridge_publish_transaction_duration_seconds",
    "bridge_consumer_paused",
)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by sample name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(telemetry: Telemetry, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    body, _ = telemetry.render()
    return samples(body.decode()).get((name, frozenset((labels or {}).items())))


def _fetch(url: str) -> tuple[int, str, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


async def test_metrics_endpoint_serves_the_recorded_values() -> None:
    telemetry = Telemetry(templates=["cnn"])
    telemetry.suggestion_received("cnn", "accepted", count=3)
    telemetry.run_finished("succeeded", cached=False, duration_s=2.0)
    telemetry.set_consumer_lag(topic="bridge.suggestions", partition=2, lag=17)
    telemetry.dead_lettered("invalid_json")

    async with HttpServer("127.0.0.1", 0, Health(), telemetry) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        status, content_type, body = await asyncio.to_thread(_fetch, url)

    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    for name in METRIC_NAMES:
        assert f"# HELP {name}" in text
    assert 'bridge_suggestions_received_total{outcome="accepted",template="cnn"} 3.0' in text
    assert 'bridge_runs_finished_total{cached="false",status="succeeded"} 1.0' in text
    assert 'bridge_consumer_lag{partition="2",topic="bridge.suggestions"} 17.0' in text
    assert 'bridge_dead_letters_total{type="invalid_json"} 1.0' in text


def test_suggestions_are_counted_by_template_and_outcome() -> None:
    telemetry = Telemetry()
    telemetry.suggestion_received("cnn", "accepted", count=4)
    telemetry.suggestion_received("cnn", "duplicate")
    telemetry.suggestion_received("load-shard", "dead_lettered")

    name = "bridge_suggestions_received_total"
    assert value(telemetry, name, {"template": "cnn", "outcome": "accepted"}) == 4
    assert value(telemetry, name, {"template": "cnn", "outcome": "duplicate"}) == 1
    assert value(telemetry, name, {"template": "load-shard", "outcome": "dead_lettered"}) == 1


def test_unknown_templates_cannot_create_series() -> None:
    telemetry = Telemetry(templates=["cnn"])
    for i in range(50):
        telemetry.suggestion_received(f"made-up-{i}", "dead_lettered")

    name = "bridge_suggestions_received_total"
    assert value(telemetry, name, {"template": OTHER, "outcome": "dead_lettered"}) == 50
    assert value(telemetry, name, {"template": "made-up-0", "outcome": "dead_lettered"}) is None


def test_free_form_labels_are_capped_without_a_known_set() -> None:
    telemetry = Telemetry(max_label_values=2)
    for error_type in ("invalid_json", "unknown_schema", "validation", "validation", "other_thing"):
        telemetry.dead_lettered(error_type)

    assert value(telemetry, "bridge_dead_letters_total", {"type": "invalid_json"}) == 1
    assert value(telemetry, "bridge_dead_letters_total", {"type": "unknown_schema"}) == 1
    assert value(telemetry, "bridge_dead_letters_total", {"type": OTHER}) == 3


def test_runs_finished_by_status_and_cached_with_durations_of_executed_runs_only() -> None:
    telemetry = Telemetry()
    telemetry.run_finished("succeeded", cached=False, duration_s=0.02)
    telemetry.run_finished("succeeded", cached=False, duration_s=1800.0)
    telemetry.run_finished("succeeded", cached=True, duration_s=0.001)
    telemetry.run_finished("skipped", cached=False)

    finished = "bridge_runs_finished_total"
    assert value(telemetry, finished, {"status": "succeeded", "cached": "false"}) == 2
    assert value(telemetry, finished, {"status": "succeeded", "cached": "true"}) == 1
    assert value(telemetry, finished, {"status": "skipped", "cached": "false"}) == 1
    assert value(telemetry, finished, {"status": "failed", "cached": "false"}) == 0  # present from the start

    duration = "bridge_run_duration_seconds"
    assert value(telemetry, f"{duration}_count", {"status": "succeeded"}) == 2
    assert value(telemetry, f"{duration}_sum", {"status": "succeeded"}) == pytest.approx(1800.02)
    assert value(telemetry, f"{duration}_bucket", {"status": "succeeded", "le": "0.025"}) == 1
    assert value(telemetry, f"{duration}_bucket", {"status": "succeeded", "le": "1800.0"}) == 2
    assert value(telemetry, f"{duration}_bucket", {"status": "succeeded", "le": "3600.0"}) == 2
    assert value(telemetry, f"{duration}_count", {"status": "skipped"}) == 0


def test_batch_sizes_in_flight_and_backpressure() -> None:
    telemetry = Telemetry()
    telemetry.operation_created(configs=3)
    telemetry.operation_created(configs=64)
    telemetry.set_runs_in_flight(256)
    telemetry.set_consumer_paused(True)

    assert value(telemetry, "bridge_operation_batch_size_count") == 2
    assert value(telemetry, "bridge_operation_batch_size_bucket", {"le": "4.0"}) == 1
    assert value(telemetry, "bridge_operation_batch_size_bucket", {"le": "64.0"}) == 2
    assert value(telemetry, "bridge_runs_in_flight") == 256
    assert value(telemetry, "bridge_consumer_paused") == 1

    telemetry.set_runs_in_flight(10)
    telemetry.set_consumer_paused(False)
    assert value(telemetry, "bridge_runs_in_flight") == 10
    assert value(telemetry, "bridge_consumer_paused") == 0


def test_consumer_lag_per_partition_and_revoked_partitions_disappear() -> None:
    telemetry = Telemetry()
    telemetry.set_consumer_lag("s", 0, 5)
    telemetry.set_consumer_lag("s", 1, 0)
    telemetry.set_consumer_lag("s", 0, 2)
    telemetry.set_consumer_lag("c", 0, 0)  # the control topic's partition 0 is another series

    assert value(telemetry, "bridge_consumer_lag", {"topic": "s", "partition": "0"}) == 2
    assert value(telemetry, "bridge_consumer_lag", {"topic": "s", "partition": "1"}) == 0
    assert value(telemetry, "bridge_consumer_lag", {"topic": "c", "partition": "0"}) == 0

    telemetry.forget_partition("s", 0)
    telemetry.forget_partition("s", 7)  # never reported: nothing happens
    assert value(telemetry, "bridge_consumer_lag", {"topic": "s", "partition": "0"}) is None
    assert value(telemetry, "bridge_consumer_lag", {"topic": "s", "partition": "1"}) == 0


def test_publish_transactions_and_their_latency() -> None:
    telemetry = Telemetry()
    telemetry.publish_transaction(0.004)
    telemetry.publish_transaction(0.2, outcome="aborted")

    assert value(telemetry, "bridge_publish_transactions_total", {"outcome": "committed"}) == 1
    assert value(telemetry, "bridge_publish_transactions_total", {"outcome": "aborted"}) == 1
    assert value(telemetry, "bridge_publish_transaction_duration_seconds_count") == 2
    assert value(telemetry, "bridge_publish_transaction_duration_seconds_bucket", {"le": "0.005"}) == 1


def test_each_telemetry_has_its_own_registry() -> None:
    first, second = Telemetry(), Telemetry()  # a shared registry would refuse the second set of names
    first.dead_lettered("invalid_json")

    assert value(first, "bridge_dead_letters_total", {"type": "invalid_json"}) == 1
    assert value(second, "bridge_dead_letters_total", {"type": "invalid_json"}) is None
    assert b"bridge_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_render_names_the_text_format() -> None:
    body, content_type = Telemetry().render()

    assert content_type.startswith("text/plain; version=0.0.4")
    assert {family.name for family in text_string_to_metric_families(body.decode())} >= set(METRIC_NAMES)
