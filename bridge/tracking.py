"""What a run's own code calls to report metrics and outputs back to the bridge.

The bridge gives every run `BRIDGE_METRICS_FILE`; each call appends one JSON line to it:

    {"step": 3, "metrics": {"loss": 0.21}}
    {"outputs": {"loss": 0.2, "accuracy": 0.9}}

Outside the bridge (the variable unset) the calls do nothing, so a script runs the same by hand.
This module imports nothing from the rest of the bridge: a run may not have its dependencies.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

METRICS_FILE_ENV = "BRIDGE_METRICS_FILE"


def _append(record: dict[str, Any]) -> None:
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        return
    line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    # One write() of a short line in append mode lands whole, so the bridge never reads half a record.
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def log_metrics(step: int | None = None, **metrics: float) -> None:
    """Report intermediate metrics (early-stopping policies read these), e.g. `log_metrics(step=3, loss=0.21)`."""
    if not metrics:
        return
    record: dict[str, Any] = {"metrics": {k: float(v) for k, v in metrics.items()}, "time": time.time()}
    if step is not None:
        record["step"] = int(step)
    _append(record)


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Polyaxon's spelling for one metric."""
    log_metrics(step=step, **{name: value})


def log_outputs(**outputs: Any) -> None:
    """Report the run's final outputs (what the optimizer receives), e.g. `log_outputs(loss=0.2)`."""
    if outputs:
        _append({"outputs": outputs, "time": time.time()})
