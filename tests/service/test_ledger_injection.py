"""The ledger topic cannot be used to inject work: a forged `received` record is re-validated like a suggestion
when the service reconciles it, and one the bridge would not have accepted is a dead letter that never runs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.kafka.connection import ensure_topics
from bridge.service.intake import run_id_of
from tests.service.service_support import (
    count_results,
    read_until,
    record_names,
    running,
    send_raw,
    send_record,
    service_settings,
    suggestion,
)

pytestmark = pytest.mark.kafka


def _ledger(run_id: str, suggestion_id: str, **fields: Any) -> bytes:
    body = {
        "schema": "bridge.ledger/v1",
        "run_id": run_id,
        "state": "received",
        "study": "s",
        "template": "job",
        "suggestion_id": suggestion_id,
        **fields,
    }
    return json.dumps(body).encode()


async def test_forged_ledger_records_are_dead_letters_and_never_run(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = service_settings(kafka_bootstrap, tmp_path)  # allow_inline_operations is false
    record = str(tmp_path / "record")
    marker = tmp_path / "marker"
    inline = {
        "kind": "operation",
        "name": "evil",
        "component": {
            "kind": "component",
            "name": "evil",
            "run": {"kind": "job", "container": {"image": "x", "command": ["touch", str(marker)]}},
        },
    }
    evil_id = run_id_of("s", "job", "evil")
    bad_params_id = run_id_of("s", "job", "bad-params")
    forged = {
        # the run id is right, but the record brings its own command
        evil_id: (_ledger(evil_id, "evil", operation=inline), "operation"),
        # params fine, but the run id is not the one study `s`, template `job` and id `forged` give
        "forged-run-id": (
            _ledger(
                "forged-run-id",
                "forged",
                given={"name": "forged"},
                params={"name": "forged", "record": record},
            ),
            "run_id",
        ),
        # the record's own `params` look fine; what the suggestion gave is not valid for the template
        bad_params_id: (
            _ledger(
                bad_params_id,
                "bad-params",
                given={"name": "bad-params", "sleep": "abc"},
                params={"name": "bad-params", "record": record, "sleep": 0.0},
            ),
            "given.sleep",
        ),
    }
    honest_id = run_id_of("s", "job", "honest")
    honest = _ledger(honest_id, "honest", given={"name": "honest"}, params={"name": "honest", "record": record})
    # The topics exist before the service ever starts, so its first reconcile finds the records.
    await ensure_topics(
        settings.kafka,
        settings.topics,
        partitions=settings.kafka.topic_partitions,
        give_up_after_s=30,
        compacted=[settings.topics.ledger],
    )
    for run_id, (value, _) in forged.items():
        await send_record(kafka_bootstrap, settings.topics.ledger, value, key=run_id.encode(), partition=0)
    await send_record(kafka_bootstrap, settings.topics.ledger, honest, key=honest_id.encode(), partition=0)

    async with running(settings):
        await send_raw(kafka_bootstrap, settings.topics.suggestions, [suggestion("s", [{"name": "after"}])], key=b"s")
        results = await read_until(kafka_bootstrap, settings.topics.results, count_results(2), "bridge.result/v1")
        letters = await read_until(kafka_bootstrap, settings.topics.dead_letters, lambda ms: len(ms) >= len(forged))

    # Reconcile did run the honest record: the forged ones were refused, not overlooked.
    assert sorted(r["params"]["name"] for r in results) == ["after", "honest"]
    assert not marker.exists()
    assert record_names(tmp_path) == ["after", "honest"]
    assert len(letters) == len(forged)
    by_run = {base64.b64decode(m["key"]).decode(): m for m in letters}
    assert set(by_run) == set(forged)
    for run_id, (value, field) in forged.items():
        letter = by_run[run_id]
        assert letter["error"]["type"] == "invalid_ledger_record"
        assert letter["error"]["field"] == field
        assert letter["topic"] == settings.topics.ledger
        assert letter["partition"] == 0
        assert base64.b64decode(letter["value"]) == value
    assert by_run[evil_id]["error"]["message"].startswith("inline_operation_refused")
