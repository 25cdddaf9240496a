"""Configuration comes from defaults < the YAML file < BRIDGE_<SECTION>__<KEY> < flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.config.settings import load_settings


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_contracts() -> None:
    settings = load_settings(None)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.group_id == "suggestion-bridge"
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.topics.model_dump() == {
        "suggestions": "bridge.suggestions",
        "results": "bridge.results",
        "operations": "bridge.operations",
        "dead_letters": "bridge.dlq",
        "control": "bridge.control",
        "ledger": "bridge.ledger",
    }
    assert (settings.kafka.topic_partitions, settings.kafka.topic_replication_factor) == (4, 1)
    assert (settings.batching.linger_ms, settings.batching.max_configs) == (200, 64)
    assert (settings.executor.kind, settings.executor.max_parallel) == ("local", 4)
    assert (settings.max_in_flight, settings.shutdown_grace_s) == (256, 30)
    assert settings.allow_inline_operations is False
    assert settings.http.port == 8080
    assert settings.workdir == Path(".bridge")
    assert settings.max_message_bytes == 1024 * 1024


def test_the_contracts_example_file_loads(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """
kafka: {bootstrap_servers: "127.0.0.1:9092", group_id: suggestion-bridge, security_protocol: PLAINTEXT}
topics: {suggestions: bridge.suggestions, results: bridge.results, operations: bridge.operations,
         dead_letters: bridge.dlq, control: bridge.control}
batching: {linger_ms: 200, max_configs: 64}
executor: {kind: local, max_parallel: 4}
max_in_flight: 256
shutdown_grace_s: 30
allow_inline_operations: false
http: {port: 8080}
templates:
  cnn:                                  # an operation's fields; paths relative to this file
    pathRef: components/typed.yaml
    matrix: {kind: mapping, concurrency: 2}
    cache: {ttl: 3600}
    termination: {maxRetries: 1, timeout: 600}
""",
    )
    settings = load_settings(path)
    assert settings.templates["cnn"]["pathRef"] == "components/typed.yaml"
    assert settings.base_dir == tmp_path.resolve()


def test_environment_beats_file_and_flags_beat_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "kafka: {bootstrap_servers: 'file:9092', group_id: file}\nmax_in_flight: 10\n")
    assert load_settings(path).kafka.group_id == "file"

    monkeypatch.setenv("BRIDGE_KAFKA__GROUP_ID", "env")
    monkeypatch.setenv("BRIDGE_MAX_IN_FLIGHT", "20")
    settings = load_settings(path)
    assert (settings.kafka.group_id, settings.max_in_flight) == ("env", 20)
    assert settings.kafka.bootstrap_servers == "file:9092"  # one key from the environment keeps the section's rest

    settings = load_settings(path, {"kafka.group_id": "flag", "max_in_flight": None, "http": {"port": 0}})
    assert (settings.kafka.group_id, settings.max_in_flight, settings.http.port) == ("flag", 20, 0)
    assert settings.kafka.bootstrap_servers == "file:9092"


def test_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    path = _file(tmp_path, "kafka: {security_protocol: SSL, ssl_cafile: ca.pem}\nworkdir: runs\n")
    settings = load_settings(path)
    assert settings.kafka.ssl_cafile == tmp_path.resolve() / "ca.pem"
    assert settings.workdir == tmp_path.resolve() / "runs"
    assert load_settings(path, {"workdir": "elsewhere"}).workdir == Path("elsewhere")


def test_the_runs_own_variables_are_not_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_RUN_ID", "r-1")
    monkeypatch.setenv("BRIDGE_METRICS_FILE", "/tmp/m.jsonl")
    assert load_settings(None).max_in_flight == 256


def test_an_empty_variable_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_MECHANISM", "")
    assert load_settings(None).kafka.sasl_mechanism is None
