"""`bridge tail`: follow the results and operations topics, as a live table for people or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridge.config.settings import BridgeSettings
from bridge.contract import versions
from bridge.kafka.connection import client_kwargs, with_broker_retry
from bridge.local.console import fmt_mapping

MAX_ROWS = 40
RESULT_SCHEMA = versions.current(versions.RESULT)
OPERATION_SCHEMA = versions.current(versions.OPERATION)
CATCH_UP_S = 10.0  # after --limit results, how long to read the operations topic up to where it was


def outcome_cell(result: dict[str, Any]) -> str:
    """What a person wants to know of a run: its outputs if it succeeded, else why it did not (with what it
    reported before it was stopped, if anything)."""
    outputs = fmt_mapping(result.get("outputs") or {})
    error = result.get("error") or {}
    if result.get("status") == "succeeded" or not isinstance(error, dict) or not error:
        return outputs
    where = f" at {error['field']}" if error.get("field") else ""  # a refused suggestion names the field at fault
    why = f"{error.get('type', 'error')}{where}: {error.get('message', '')}".rstrip(": ")
    return f"{why} (last: {outputs})" if outputs else why


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
            outcome_cell(r),
            str(r.get("attempt", "")),
            f"{duration:.1f}s" if isinstance(duration, float) else "",
        )
    return table


class _View:
    """Shows the records it is given: rows of a live table, or JSON lines."""

    def __init__(self, *, study: str | None, as_table: bool) -> None:
        self._study = study
        self.rows: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.live = Live(_table(self.rows, self.ops), console=Console(), refresh_per_second=4) if as_table else None

    def show(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Show one record; True if it was a result of the study followed."""
        try:
            data = json.loads(record.value)
        except (TypeError, ValueError):
            return False
        if not isinstance(data, dict) or (self._study is not None and data.get("study") != self._study):
            return False
        is_result = data.get("schema") == RESULT_SCHEMA
        if self.live is None:
            print(json.dumps(data, separators=(",", ":")), flush=True)
        elif is_result:
            self.rows[str(data.get("run_id"))] = data
            self.live.update(_table(self.rows, self.ops))
        elif data.get("schema") == OPERATION_SCHEMA:
            self.ops[str(data.get("operation_id"))] = data
            self.live.update(_table(self.rows, self.ops))
        return is_result


async def tail(
    settings: BridgeSettings,
    *,
    study: str | None,
    output: str,
    from_beginning: bool,
    limit: int | None,
    connect_timeout_s: float = 30.0,
) -> None:
    """Print results (and operation events, in JSON mode) as they are committed, until interrupted or, with
    `limit`, until that many results and the operation events committed before the last of them."""
    consumer = AIOKafkaConsumer(
        settings.topics.results,
        settings.topics.operations,
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    view = _View(study=study, as_table=output == "table" or (output == "auto" and sys.stdout.isatty()))
    try:
        await with_broker_retry(
            "follow results",
            consumer.start,
            give_up_after_s=connect_timeout_s,
            servers=settings.kafka.bootstrap_servers,
        )
        if view.live is not None:
            view.live.start()
        seen = 0
        async for record in consumer:
            if view.show(record):
                seen += 1
                if limit is not None and seen >= limit:
                    break
        if limit is not None:
            await _catch_up(consumer, settings.topics.operations, view)
    finally:
        if view.live is not None:
            view.live.stop()
        await consumer.stop()  # also after a start that failed: an unstopped consumer is reported at exit


async def _catch_up(consumer: AIOKafkaConsumer, topic: str, view: _View) -> None:
    """Read the operations topic up to its end as of now: the two topics are fetched independently, so the
    last results can arrive before the operation events committed with or before them."""
    partitions = [tp for tp in consumer.assignment() if tp.topic == topic]
    if not partitions:
        return
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
        if not behind:
            return
        batches = await consumer.getmany(*behind, timeout_ms=200)
        for records in batches.values():
            for record in records:
                view.show(record)
