"""What the Optuna integration's tests share: a bridge config registering the test job as template `job`, and
what the bridge did, read from outside (the job's executions, the results topic)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from tests.engine_support import job_component
from tests.kafka_broker import read_topic


def job_config(root: Path, **overrides: Any) -> Path:
    """A bridge config file in `root` whose template `job` runs tests/scripts_job.py (its records in
    `root/record`)."""
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:9"},
        "templates": {
            "job": {
                "component": job_component(),
                "matrix": {"kind": "mapping", "concurrency": 4},
                "params": {"record": {"value": str(root / "record")}},
            }
        },
        **overrides,
    }
    path = root / "bridge.yaml"
    path.write_text(json.dumps(data))
    return path


def served_config(root: Path, bootstrap: str) -> Path:
    """A config for `bridge serve` on the session's broker, with uuid-named topics and group, its template `job`
    running four at a time (its records in `root/record`), written to `root/bridge.yaml`."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    topics = ("suggestions", "results", "operations", "dead_letters", "control", "ledger")
    return job_config(
        root,
        kafka={"bootstrap_servers": bootstrap, "group_id": f"{prefix}-group"},
        topics={name: f"{prefix}.{name}" for name in topics},
        batching={"linger_ms": 50, "max_configs": 64},
        executor={"kind": "local", "max_parallel": 4},
        workdir=str(root / "work"),
        shutdown_grace_s=10,
    )


def executions(root: Path) -> Counter[str]:
    """How many times the test job ran under each name (tests/scripts_job.py records each execution)."""
    return Counter(json.loads(f.read_text())["name"] for f in (root / "record").glob("*.json"))


async def final_results(
    bootstrap: str, topic: str, study: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The study's final results on the results topic (replays included), read until `until(results)`."""

    def finals(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
        out = [json.loads(r.value) for r in records if r.value is not None]
        return [m for m in out if m.get("schema") == "bridge.result/v1" and m.get("study") == study]

    return finals(await read_topic(bootstrap, topic, until=lambda rs: until(finals(rs)), timeout_s=120))
