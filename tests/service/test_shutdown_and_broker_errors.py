"""SIGTERM drains (runs finish, results are published, offsets committed, exit 0); an unreachable broker at
start is retried with backoff, then reported in one line with a non-zero exit."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.polling import wait_until
from tests.service.service_support import count_results, read_until, send_raw, service_settings, suggestion

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def test_sigterm_lets_running_runs_finish_publishes_and_commits(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = _free_port()
    settings = service_settings(kafka_bootstrap, tmp_path, http={"host": "127.0.0.1", "port": port})
    record = tmp_path / "record"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "-c", str(tmp_path / "bridge.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _ready(port) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.communicate()[1]
        await send_raw(
            kafka_bootstrap,
            settings.topics.suggestions,
            [suggestion("s", [{"name": f"slow-{i}", "sleep": 2.0} for i in range(3)])],
            key=b"s",
        )
        wait_until(lambda: len(list(record.glob("*.json"))) == 3, timeout=60)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "bridge_ready" in stderr  # a person starting `serve` is told when it serves (info is its default)
    results = await read_until(kafka_bootstrap, settings.topics.results, count_results(3), "bridge.result/v1")
    assert sorted(r["status"] for r in results) == ["succeeded"] * 3
    assert all(json.loads(f.read_text()).get("end") for f in record.glob("*.json"))  # they ran to their end

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.kafka.group_id)
    finally:
        await admin.close()
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == settings.topics.suggestions}
    assert sum(committed.values()) == 1  # the one message, committed past


def test_unreachable_broker_at_start_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "serve",
            "--bootstrap-servers",
            dead,
            "--connect-timeout",
            "3",
            "--http-port",
            "0",
            "--workdir",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"cannot reach Kafka at {dead}" in errors[0]
    assert time.monotonic() - began >= 3  # it retried for the configured time before giving up
    assert "broker_retry" in out.stderr  # with backoff, logged


def test_submit_validates_before_sending(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"params": {"x": 1}}]))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "submit",
            "--study",
            "bad study!",
            "--template",
            "job",
            "-f",
            str(bad),
            "--bootstrap-servers",
            "127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "study" in out.stderr
    assert "Traceback" not in out.stderr


async def test_submit_publishes_a_message_the_bridge_accepts(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)
    from tests.service.service_support import running

    shards = tmp_path / "shards.yaml"
    shards.write_text("- {name: part-1}\n- {name: part-2}\n")
    async with running(settings):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bridge",
                "submit",
                "-c",
                str(tmp_path / "bridge.yaml"),
                "--study",
                "ingest",
                "--template",
                "job",
                "-f",
                str(shards),
                # The service shares this blocked event loop: it cannot answer while submit waits; the ids only.
                "--no-wait",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        ids = out.stdout.split()
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
    assert sorted(r["suggestion_id"] for r in results) == sorted(ids)
