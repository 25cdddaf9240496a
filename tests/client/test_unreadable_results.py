"""A result that a newer bridge wrote (a schema version this one does not know) on a real broker: the client
skips it and says why, `bridge tail` shows it as a row that says the same, and neither stops or crashes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.client import BridgeClient, ResultsTimeout
from bridge.config.sections import KafkaSettings, TopicsSettings
from tests.cli.cli_support import bridge
from tests.service.service_support import send_raw

pytestmark = pytest.mark.kafka

_RESULT = {
    "schema": "bridge.result/v1",
    "study": "upgrading",
    "template": "job",
    "operation_id": "op-1",
    "run_id": "run-old",
    "suggestion_id": "old",
    "index": 0,
    "params": {},
    "status": "succeeded",
    "outputs": {"loss": 0.3},
}
_NEWER = {**_RESULT, "schema": "bridge.result/v2", "run_id": "run-new", "suggestion_id": "new", "new_field": 1}
_SAYS = "bridge.result/v2: written by a newer bridge than this one; upgrade to read it"


async def test_a_newer_bridges_result_is_reported_the_same_by_the_client_and_tail(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = {t: f"{t}-{uuid.uuid4().hex[:8]}" for t in TopicsSettings.model_fields}
    topics = TopicsSettings(**names)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in (topics.results, topics.dead_letters, topics.operations)])
    finally:
        await admin.close()
    await send_raw(kafka_bootstrap, topics.results, [b"not a message"], key=b"upgrading")  # before the client
    async with BridgeClient(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), topics=topics) as client:
        values = [json.dumps(_NEWER).encode(), json.dumps(_RESULT).encode()]
        await send_raw(kafka_bootstrap, topics.results, values, key=b"upgrading")
        got = await client.results("upgrading", ["old"], timeout=30)
        assert got["old"].run_id == "run-old"
        assert client.unreadable == {_SAYS: 1}
        with pytest.raises(ResultsTimeout) as caught:
            await client.results("upgrading", ["new"], timeout=1)
        assert _SAYS in str(caught.value)

    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "topics": names}))
    out = bridge(
        "tail",
        "-c",
        str(config),
        "--from-beginning",
        "--limit",
        "2",
        "--output",
        "table",
        cwd=tmp_path,
        timeout=60,
        env={"COLUMNS": "300"},  # one line per row
    )
    assert out.returncode == 0, out.stderr
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.stdout.splitlines() if "upgrading" in line]
    rows = {row[1]: " ".join(row) for row in cells}
    assert rows.keys() == {"old", "new"}, out.stdout
    assert "succeeded" in rows["old"] and "loss=0.3" in rows["old"]
    assert "unreadable" in rows["new"] and _SAYS in rows["new"]
    assert "1 record(s) skipped: not a JSON object" in out.stderr
