"""`bridge tail` on a real broker (issue 11, item 13): `--limit` also shows the operation events committed before
the results it stops at, and a stopped run shows why it was stopped, not only what it last reported."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.cli.cli_support import bridge

pytestmark = pytest.mark.kafka

_OPERATION = {
    "schema": "bridge.operation/v1",
    "event": "finished",
    "study": "tailed",
    "template": "job",
    "operation_id": "op-1",
}
_STOPPED = {
    "schema": "bridge.result/v1",
    "study": "tailed",
    "template": "job",
    "operation_id": "op-1",
    "run_id": "run-1",
    "suggestion_id": "s-1",
    "index": 0,
    "params": {},  # every result has its params: one without is not a result `tail` can read
    "status": "stopped",
    "outputs": {"loss": 0.3},
    "attempt": 1,
    "error": {"type": "stopped", "message": "stopped by operator alice"},
}


@pytest.fixture
async def topics(kafka_bootstrap: str, tmp_path: Path) -> Path:
    """Fresh results and operations topics holding one operation event, then one stopped run's result; the
    config file naming them."""
    names = {t: f"{t}-{uuid.uuid4().hex[:8]}" for t in ("suggestions", "results", "operations", "dlq", "control")}
    names["ledger"] = f"ledger-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(names["results"], 3, 1), NewTopic(names["operations"], 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(names["operations"], json.dumps(_OPERATION).encode(), key=b"tailed")
        await producer.send_and_wait(names["results"], json.dumps(_STOPPED).encode(), key=b"tailed")
    finally:
        await producer.stop()
    config = tmp_path / "bridge.yaml"
    topic_keys = {"dead_letters" if k == "dlq" else k: v for k, v in names.items()}
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "topics": topic_keys}))
    return config


def test_limit_shows_the_operation_events_before_the_last_result(topics: Path, tmp_path: Path) -> None:
    out = bridge(
        "tail", "-c", str(topics), "--from-beginning", "--limit", "1", "--output", "jsonl", cwd=tmp_path, timeout=60
    )
    assert out.returncode == 0, out.stderr
    schemas = [json.loads(line)["schema"] for line in out.stdout.splitlines()]
    assert sorted(schemas) == ["bridge.operation/v1", "bridge.result/v1"]


def test_a_stopped_run_shows_why_it_was_stopped(topics: Path, tmp_path: Path) -> None:
    out = bridge(
        "tail",
        "-c",
        str(topics),
        "--from-beginning",
        "--limit",
        "1",
        "--output",
        "table",
        cwd=tmp_path,
        timeout=60,
        env={"COLUMNS": "200"},  # one line per row
    )
    assert out.returncode == 0, out.stderr
    assert "stopped: stopped by operator alice (last: loss=0.3)" in out.stdout
