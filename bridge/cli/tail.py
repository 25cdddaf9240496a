"""`bridge tail`: follow the results and operations topics, as a live table for people or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bridge.cli.common import without_field
from bridge.config.settings import BridgeSettings
from bridge.contract.decoders import Decoded, Unreadable, read_operation, read_result
from bridge.contract.messages import OperationCreated, OperationFinished, OperationProgress
from bridge.contract.results import ProgressEvent, RunResult
from bridge.contract.versions import RESULT, family_of
from bridge.kafka.reader import Record, TopicReader
from bridge.local.console import fmt_mapping

MAX_ROWS = 40
CATCH_UP_S = 10.0  # after --limit results, how long to read the operations topic up to where it was


def outcome_cell(result: Mapping[str, Any]) -> str:
    """What a person wants to know of a run: its outputs if it succeeded, else why it did not (with what it
    reported before it was stopped, if anything)."""
    outputs = fmt_mapping(result.get("outputs") or {})
    error = result.get("error") or {}
    if result.get("status") == "succeeded" or not isinstance(error, dict) or not error:
        return outputs
    field = error.get("field") if isinstance(error.get("field"), str) and error.get("field") else None
    where = f" at {field}" if field else ""  # a refused suggestion names the field at fault
    why = f"{error.get('type', 'error')}{where}: {without_field(field, str(error.get('message', '')))}".rstrip(": ")
    return f"{why} (last: {outputs})" if outputs else why


def unreadable_row(unreadable: Unreadable) -> dict[str, Any]:
    """A result record this bridge cannot read, as a row of the table: what it says of itself, and why not."""
    data = unreadable.data or {}
    return {
        "study": data.get("study"),
        "suggestion_id": data.get("suggestion_id"),
        "run_id": data.get("run_id"),
        "status": "unreadable",
        "error": {"type": "unreadable", "message": str(unreadable)},
    }


def _table(rows: dict[str, Mapping[str, Any]], ops: dict[str, Mapping[str, Any]]) -> Table:
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


Read = Decoded[RunResult | ProgressEvent] | Decoded[OperationCreated | OperationProgress | OperationFinished]


class _View:
    """Shows the records it is given: rows of a live table, or JSON lines (each record's JSON object as it is on
    its topic, also one this bridge cannot read). Records that hold no JSON object are counted, not shown."""

    def __init__(self, *, study: str | None, as_table: bool, results_topic: str) -> None:
        self._study = study
        self._results = results_topic
        self.rows: dict[str, Mapping[str, Any]] = {}
        self.ops: dict[str, Mapping[str, Any]] = {}
        self.skipped = 0
        self.live = Live(_table(self.rows, self.ops), console=Console(), refresh_per_second=4) if as_table else None

    def show(self, record: Record) -> bool:
        """Show one record; True if it was a result (readable or not) of the study followed."""
        read = read_result(record.value) if record.topic == self._results else read_operation(record.value)
        data = read.data
        if data is None:
            self.skipped += 1  # no JSON object: nothing to show of it
            return False
        if self._study is not None and data.get("study") != self._study:
            return False
        is_result = _is_result(read)
        if self.live is None:
            print(json.dumps(data, separators=(",", ":")), flush=True)
            return is_result
        if isinstance(read, Unreadable):
            if is_result:
                self.rows[f"{record.topic}:{record.partition}@{record.offset}"] = unreadable_row(read)
        elif isinstance(read.message, RunResult):
            self.rows[read.message.run_id] = data
        elif isinstance(read.message, OperationCreated | OperationProgress | OperationFinished):
            self.ops[read.message.operation_id] = data
        self.live.update(_table(self.rows, self.ops))
        return is_result


def _is_result(read: Read | Unreadable) -> bool:
    """A final result, or a record of the results' schema family that this bridge cannot read (a newer
    version, or one that does not validate): either is one of the results `--limit` counts."""
    if isinstance(read, Unreadable):
        return isinstance(read.schema, str) and family_of(read.schema) == RESULT
    return isinstance(read.message, RunResult)


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
    reader = TopicReader(
        settings.kafka, follows=(settings.topics.results, settings.topics.operations), from_beginning=from_beginning
    )
    as_table = output == "table" or (output == "auto" and sys.stdout.isatty())
    view = _View(study=study, as_table=as_table, results_topic=settings.topics.results)
    try:
        await reader.start("follow results", give_up_after_s=connect_timeout_s)
        if view.live is not None:
            if not from_beginning:
                print(
                    "following what is published from now on (--from-beginning: also what came before)", file=sys.stderr
                )
            view.live.start()
        await _follow(reader, view, limit)
        if limit is not None:
            await _catch_up(reader, settings.topics.operations, view)
    finally:
        if view.live is not None:
            view.live.stop()
        await reader.stop()  # also after a start that failed: an unstopped consumer is reported at exit
        if view.skipped:
            print(f"{view.skipped} record(s) skipped: not a JSON object", file=sys.stderr)


async def _follow(reader: TopicReader, view: _View, limit: int | None) -> None:
    """Show records as they come, until `limit` results were shown."""
    seen = 0
    while True:
        # No more records than results still wanted: what follows the last of them is not read, so the catch-up
        # still finds the operation events after it.
        for record in await reader.read(0.5, at_most=None if limit is None else limit - seen):
            if view.show(record):
                seen += 1
                if limit is not None and seen >= limit:
                    return


async def _catch_up(reader: TopicReader, topic: str, view: _View) -> None:
    """Read the operations topic up to its end as of now: the two topics are fetched independently, so the
    last results can arrive before the operation events committed with or before them."""
    partitions = [p for p in reader.assignment() if p.topic == topic]
    if not partitions:
        return
    ends = await reader.end_offsets(partitions)
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        behind = await reader.behind(ends)
        if not behind:
            return
        for record in await reader.read(0.2, *behind):
            view.show(record)
