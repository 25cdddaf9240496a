"""Kafka security settings: SASL (PLAIN, SCRAM) and TLS files, with secrets that never show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.config.settings import load_settings
from bridge.errors import ConfigError

PASSWORD = "hunter2-s3cret"


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_with_scram_or_plain_is_accepted(tmp_path: Path, mechanism: str) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    path = tmp_path / "bridge.yaml"
    path.write_text(
        f"kafka: {{security_protocol: SASL_SSL, sasl_mechanism: {mechanism}, sasl_username: bridge,"
        f" sasl_password: {PASSWORD}, ssl_cafile: ca.pem}}\n",
        encoding="utf-8",
    )
    kafka = load_settings(path).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", mechanism)
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == PASSWORD


def test_the_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_USERNAME", "bridge")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_PASSWORD", PASSWORD)
    settings = load_settings(None)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert PASSWORD not in shown
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == PASSWORD


def test_the_password_never_shows_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_PASSWORD", PASSWORD)  # beside PLAINTEXT: a mistake
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert PASSWORD not in str(caught.value)
    assert "security_protocol is PLAINTEXT" in str(caught.value)


def test_the_password_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_PASSWORD_FILE", str(tmp_path / "password"))
    kafka = load_settings(
        None, {"kafka": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"}}
    ).kafka
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == PASSWORD
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="sasl_password_file: cannot read"):
        load_settings(None, {"kafka.security_protocol": "SASL_SSL"})


def test_sasl_needs_its_mechanism_user_and_password() -> None:
    with pytest.raises(ConfigError, match="SASL_SSL needs sasl_mechanism, sasl_username, sasl_password"):
        load_settings(None, {"kafka.security_protocol": "SASL_SSL"})


def test_tls_files_beside_a_plaintext_protocol_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="ssl files are set but security_protocol is PLAINTEXT"):
        load_settings(None, {"kafka.ssl_cafile": str(tmp_path / "ca.pem")})
    with pytest.raises(ConfigError, match=r"kafka\.ssl_cafile: Path does not point to a file"):
        load_settings(None, {"kafka.security_protocol": "SSL", "kafka.ssl_cafile": str(tmp_path / "no.pem")})
