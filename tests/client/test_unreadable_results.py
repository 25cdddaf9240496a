"""A result that a newer bridge wrote (a schema version this one does not know) on a real broker: the client
skips it and says why, `bridge tail` shows it as a row that says the same, and neither stops or crashes. A v1
result with fields this bridge does not know is read by all of them, as any other."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.client import BridgeClient, ResultsTimeout, Study
from bridge.config.sections import KafkaSettings, TopicsSettings
from bridge.config.settings import BridgeSettings
from bridge.contract.identity import run_id_of
from tests.cli.cli_support import bridge
from tests.client.client_support import fresh_topics
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


async def test_a_result_with_fields_this_bridge_does_not_know_is_read_by_the_client_a_study_and_tail(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A newer bridge may add an optional field to a v1 result: every reader here still takes the result."""
    topics = await fresh_topics(kafka_bootstrap, partitions=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.operations, 1, 1)])  # tail follows it too
    finally:
        await admin.close()
    settings = BridgeSettings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap), topics=topics)
    newer = {**_RESULT, "study": "newer", "suggestion_id": "asked", "run_id": run_id_of("newer", "job", "asked")}
    newer |= {"from_a_newer_bridge": {"any": "thing"}, "warnings": ["params.x: a warning"]}
    newer["error"] = None
    async with BridgeClient(kafka=settings.kafka, topics=topics) as client:
        async with Study(study="newer", template="job", client=client) as study:
            await study.ask({"x": 1}, suggestion_id="asked")
            await send_raw(kafka_bootstrap, topics.results, [json.dumps(newer).encode()], key=b"newer")
            got = await study.next_result(timeout=30)
        assert (got.suggestion_id, got.outputs, got.warnings) == ("asked", {"loss": 0.3}, ["params.x: a warning"])
        plain = {**newer, "suggestion_id": "plain", "run_id": "run-plain"}
        await send_raw(kafka_bootstrap, topics.results, [json.dumps(plain).encode()], key=b"newer")
        (answer,) = (await client.results("newer", ["plain"], timeout=30)).values()
        assert answer.run_id == "run-plain"
        assert client.unreadable == {}  # nothing counted unreadable

    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "topics": topics.model_dump()}))
    out = bridge(
        *("tail", "-c", str(config), "--from-beginning", "--limit", "2", "--output", "table"),
        cwd=tmp_path,
        timeout=60,
        env={"COLUMNS": "300"},
    )
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "newer" in line]
    assert len(rows) == 2 and all("succeeded" in r and "loss=0.3" in r for r in rows), out.stdout
    assert "unreadable" not in out.stdout + out.stderr
