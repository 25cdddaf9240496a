"""A bad configuration is one ConfigError line: where it came from, the key path, what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.config.settings import load_settings
from bridge.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_a_bad_value_names_its_key_and_what_was_expected(tmp_path: Path) -> None:
    assert _error(tmp_path, "kafka: {security_protocol: TLS}") == (
        "kafka.security_protocol: expected 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL', got 'TLS'"
    )
    assert _error(tmp_path, "http: {port: web}").startswith("http.port: expected a valid integer")
    assert _error(tmp_path, "max_in_flight: 0") == "max_in_flight: expected greater than or equal to 1, got 0"


def test_an_unknown_key_is_named_with_the_known_ones(tmp_path: Path) -> None:
    message = _error(tmp_path, "kafka: {bootstrap_server: 'k:9092'}")
    assert message.startswith("kafka.bootstrap_server: unknown key; expected one of bootstrap_servers, ")


def test_an_unknown_section_is_rejected(tmp_path: Path) -> None:
    message = _error(tmp_path, "kafak: {group_id: g}")
    assert message.startswith("kafak: unknown key; expected one of allow_inline_operations, ")


def test_a_section_that_is_not_a_mapping_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__GROUP_ID", "g")  # merged in, it would hide the file's mistake
    assert _error(tmp_path, "kafka: [1]") == "kafka: expected a mapping of keys, got list"


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    assert _error(tmp_path, "kafka:\n  group_id: a: b\n").startswith("line 2, column 14: invalid YAML")
    assert _error(tmp_path, "- kafka").startswith("expected a mapping of sections")


def test_topics_must_differ(tmp_path: Path) -> None:
    message = _error(tmp_path, "topics: {results: bridge.suggestions}")
    assert message == "topics: every topic needs its own name; bridge.suggestions is used twice"


def test_template_names_are_safe(tmp_path: Path) -> None:
    assert _error(tmp_path, "templates: {'../x': {}}").startswith("templates.../x: String should match pattern")


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the config file"):
        load_settings(tmp_path / "missing.yaml")


def test_a_bad_variable_is_blamed_on_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HTTP__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^environment BRIDGE_HTTP__PORT: http\.port: expected a valid integer"):
        load_settings(None)
    monkeypatch.setenv("BRIDGE_HTTP__PORT", "80")
    monkeypatch.setenv("BRIDGE_KAFKA__BOGUS", "1")
    with pytest.raises(ConfigError, match=r"^environment BRIDGE_KAFKA__BOGUS: kafka\.bogus: unknown key"):
        load_settings(None)


def test_a_bad_flag_is_blamed_on_the_command_line() -> None:
    with pytest.raises(ConfigError, match=r"^command line: executor\.kind: expected 'local' or 'ray', got 'k8s'$"):
        load_settings(None, {"executor.kind": "k8s"})
