"""`bridge tail`: follow the results and operations topics, as a live table for people or JSON lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridge.config import BridgeSettings
from bridge.console import fmt_mapping
from bridge.kafka.connection import client_kwargs, with_broker_retry
from bridge.models import RESULT_SCHEMA

MAX_ROWS = 40


def _table(rows: dict[str, dict[str, Any]], ops: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=f"{len(ops)} operation(s), {len(rows)} run(s)", header_style="bold")
    for column in ("study", "suggestion", "status", "outputs", "attempt", "duration"):
        table.add_column(column, overflow="fold")
    for r in list(rows.values())[-MAX_ROWS:]:
        status = r.get("status", "")
        if r.get("cached"):
            status += " (cached)"
        duration = r.get("duration_s")
        table.add_row(
            str(r.get("study")),
            str(r.get("suggestion_id") or r.get("run_id")),
            status,
            fmt_mapping(r.get("outputs") or {}) or (r.get("error") or {}).get("message", ""),
            str(r.get("attempt", "")),
            f"{duration:.1f}s" if isinstance(duration, float) else "",
        )
    return table


async def tail(
    settings: BridgeSettings, *, study: str | None, output: str, from_beginning: bool, limit: int | None
) -> None:
    """Print results (and operation events, in JSON mode) as they are committed, until interrupted."""
    as_table = output == "table" or (output == "auto" and sys.stdout.isatty())
    consumer = AIOKafkaConsumer(
        settings.topics.results,
        settings.topics.operations,
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await with_broker_retry(
        "follow results", consumer.start, give_up_after_s=30, servers=settings.kafka.bootstrap_servers
    )
    rows: dict[str, dict[str, Any]] = {}
    ops: dict[str, dict[str, Any]] = {}
    seen = 0
    live = Live(_table(rows, ops), console=Console(), refresh_per_second=4) if as_table else None
    try:
        if live is not None:
            live.start()
        async for record in consumer:
            try:
                data = json.loads(record.value)
            except (TypeError, ValueError):
                continue
            if not isinstance(data, dict) or (study is not None and data.get("study") != study):
                continue
            is_result = data.get("schema") == RESULT_SCHEMA
            if live is None:
                print(json.dumps(data, separators=(",", ":")), flush=True)
            elif is_result:
                rows[str(data.get("run_id"))] = data
                live.update(_table(rows, ops))
            elif data.get("schema") == "bridge.operation/v1":
                ops[str(data.get("operation_id"))] = data
                live.update(_table(rows, ops))
            if is_result:
                seen += 1
                if limit is not None and seen >= limit:
                    break
    finally:
        if live is not None:
            live.stop()
        await consumer.stop()
