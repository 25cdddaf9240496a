"""`bridge dlq` shows the original bytes around the field at fault, not the record's head, with one ellipsis where
text was left out (issue 19, the submitting side, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bridge.contract.dead_letters import DeadLetter, DeadLetterError
from tests.cli.cli_support import bridge
from tests.client.client_support import fresh_topics
from tests.service.service_support import send_record

pytestmark = pytest.mark.kafka

_FIELD = "suggestions[1].params.epochs"


def _refused_record() -> bytes:
    """A suggestion message whose second suggestion's `epochs` is at fault, far from the record's head."""
    padding = {"note": "x" * 200}
    suggestions = [{"id": "ok", "params": {"epochs": 3}}, {"id": "bad", "params": {"epochs": "five"}}]
    message = {"study": "s", "template": "job", "metadata": padding, "suggestions": suggestions}
    return json.dumps(message).encode()


async def test_the_preview_is_around_the_field_at_fault(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = (await fresh_topics(kafka_bootstrap)).dead_letters
    letter = DeadLetter.of_record(
        topic="bridge.suggestions",
        partition=0,
        offset=7,
        key=b"s",
        value=_refused_record(),
        timestamp_ms=None,
        error=DeadLetterError(type="invalid_params", field=_FIELD, message=f"{_FIELD}: `five` is not an int"),
    )
    await send_record(kafka_bootstrap, topic, letter.to_json().encode(), key=b"s")
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "topics": {"dead_letters": topic}})
    )

    out = bridge("dlq", "-c", str(config), "--limit", "1", cwd=tmp_path, timeout=60, env={"COLUMNS": "300"})
    assert out.returncode == 0, out.stderr
    (row,) = out.stdout.splitlines()[1:]
    message, preview = row.split(" | ", 1)
    assert message.endswith("`five` is not an int")
    assert message.count(_FIELD) == 1, row  # in its column, not again before the message
    assert '"epochs": "five"' in preview and preview.startswith("...")
    assert "...." not in row
