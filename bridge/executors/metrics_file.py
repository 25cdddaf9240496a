"""Reading the JSON lines a run appends to `$BRIDGE_METRICS_FILE`, incrementally and without losing a line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bridge.executors.base import MetricRecord
from bridge.logs import get_logger

log = get_logger(__name__)


def parse_line(line: str) -> MetricRecord | None:
    """One record from one line; None for a line that is not a record (logged, never fatal to the run)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    step = data.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)):
        step = None
    metrics: dict[str, float] = {}
    raw_metrics = data.get("metrics")
    if isinstance(raw_metrics, dict):
        for name, value in raw_metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                metrics[str(name)] = float(value)
    outputs = data.get("outputs")
    if outputs is not None and not isinstance(outputs, dict):
        outputs = None
    if not metrics and outputs is None:
        return None
    return MetricRecord(step=None if step is None else int(step), metrics=metrics, outputs=outputs)


class MetricsTail:
    """Follows a metrics file: each `read_new()` returns the complete lines added since the last call.

    A line without its newline yet is left for the next call, so a record is never read half-written.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.outputs: dict[str, Any] = {}
        self.last_metrics: dict[str, float] = {}
        self.logged_outputs = False

    def read_new(self, *, final: bool = False) -> list[MetricRecord]:
        """New records; with `final`, a last line lacking its newline counts too (the run has ended)."""
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        records: list[MetricRecord] = []
        for raw in lines:
            if not raw.strip():
                continue
            record = parse_line(raw.decode("utf-8", errors="replace"))
            if record is None:
                log.warning("metrics_line_ignored", path=str(self._path), line=raw[:200].decode(errors="replace"))
                continue
            self.last_metrics.update(record.metrics)
            if record.outputs is not None:
                self.outputs.update(record.outputs)
                self.logged_outputs = True
            records.append(record)
        return records

    def final_outputs(self) -> dict[str, Any]:
        """The contract's outputs: what was logged with log_outputs, else the last value of each metric."""
        if self.logged_outputs:
            return dict(self.outputs)
        return dict(self.last_metrics)
