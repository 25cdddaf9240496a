"""The dash's pages: the board turned into HTML (Jinja2, autoescaped) and into the JSON of the API.

Every string from a topic reaches the markup through Jinja2's autoescape or the plots' own escaping; links carry
topic strings only in a query string (`urlencode`). Rendering reads the board and changes nothing. No I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from bridge.dash.board import STATUSES, Board, RunView, StudyView
from bridge.dash.objective import Objective, number, parse_objective
from bridge.dash.plots import history_svg, parallel_svg, progress_svg

PROGRESS_RUNS = 40  # runs drawn in the intermediate-values plot: the latest ones

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    seconds = max(0.0, now - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _num(value: Any) -> str:
    n = number(value)
    return "-" if n is None else f"{n:.6g}"


def _compact(mapping: Mapping[str, Any], limit: int = 200) -> str:
    text = ", ".join(f"{k}={v}" for k, v in mapping.items())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


_ENV.filters.update(when=_when, num=_num, compact=_compact)


def render(template: str, *, fragment: bool = False, **context: Any) -> str:
    """A page, or with `fragment` only its live part (what the page's script swaps in when the board moves)."""
    page = _ENV.get_template(template)
    if fragment:
        return "".join(page.blocks["live"](page.new_context(context)))
    return page.render(**context)


def study_row(board: Board, study: StudyView, now: float) -> dict[str, Any]:
    """A study as a line of the overview (and of `/api/studies`)."""
    objective = board.objective(study)
    best = study.best.get(objective.metric) if objective else None
    value, seq, at = best.of(objective) if best is not None and objective is not None else (None, None, None)
    counts = {s: study.counts.get(s, 0) for s in STATUSES}
    counts["running"] = study.running
    return {
        "name": study.name,
        "templates": list(study.templates),
        "counts": counts,
        "results": study.results,
        "objective": str(objective) if objective else None,
        "best": value,
        "best_result": seq,
        "best_at": at,
        "best_ago": _ago(at, now),
        "throughput_per_min": round(study.throughput(now), 2),
        "last_at": study.last_at,
        "last_ago": _ago(study.last_at, now),
        "operations": study.operations,
    }


def overview(board: Board, status: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """Everything the overview shows."""
    now = time.time() if now is None else now
    return {
        "studies": [study_row(board, s, now) for s in board.by_activity()],
        "letters_by_reason": board.letters_by_reason(now),
        "partitions": [
            {
                "partition": p.partition,
                "events": p.events,
                "last_at": p.last_at,
                "last_ago": _ago(p.last_at, now),
                "studies": list(p.studies),
            }
            for p in sorted(board.partitions.values(), key=lambda p: p.partition)
        ],
        "unreadable": dict(board.unreadable),
        "status": dict(status),
        "statuses": STATUSES,
    }


def run_row(run: RunView, objective: Objective | None) -> dict[str, Any]:
    """A run as a line of the study's table (and of its JSON)."""
    return {
        "run_id": run.run_id,
        "suggestion_id": run.suggestion_id,
        "operation_id": run.operation_id,
        "template": run.template,
        "params": run.params,
        "status": run.status,
        "early_stopped": run.early_stopped,
        "attempt": run.attempt,
        "duration_s": run.duration_s,
        "outputs": run.outputs,
        "value": run.value(objective),
        "error": run.error,
        "finished_at": run.finished_at,
        "seq": run.seq,
    }


def study_page(board: Board, study: StudyView, asked: str | None, now: float | None = None) -> dict[str, Any]:
    """Everything a study's page shows: plots, runs, and which objective it is judged by (and from where)."""
    now = time.time() if now is None else now
    parsed = parse_objective(asked)
    objective = board.objective(study, parsed)
    origin = "?objective" if parsed else ("metric early stopping" if objective else None)
    plots: dict[str, Any] = {}
    runs = list(reversed(study.runs.values()))
    if objective is not None:
        points = [
            (p.seq, value, p.run_id) for p in study.history if (value := p.outputs.get(objective.metric)) is not None
        ]
        plots["history"] = history_svg(points, metric=objective.metric, maximize=objective.maximize)
        scored = [(r.params, v) for r in reversed(runs) if (v := r.value(objective)) is not None]
        plots["parallel"] = parallel_svg(scored, metric=objective.metric, maximize=objective.maximize)
    metric = objective.metric if objective else _first_progress_metric(runs)
    if metric is not None:
        lines = [
            (
                r.run_id,
                [
                    (float(i if s is None else s), m[metric])
                    for i, (s, m) in enumerate(r.progress)
                    if metric in m and math.isfinite(m[metric])
                ],
                r.early_stopped,
            )
            for r in runs[:PROGRESS_RUNS]
        ]
        plots["progress"] = progress_svg(lines, metric=metric)
    return {
        "study": study_row(board, study, now),
        "objective": str(objective) if objective else None,
        "objective_origin": origin,
        "objective_invalid": asked if asked and parsed is None else None,
        "asked": asked or "",
        "plots": plots,
        "progress_metric": metric,
        "runs": [run_row(r, objective) for r in runs],
        "param_names": sorted({k for r in runs for k in r.params})[:30],
        "keep_runs": board.keep_runs,
        "history": board.history_len,
    }


def _first_progress_metric(runs: list[RunView]) -> str | None:
    for run in runs:
        for _, metrics in run.progress:
            for name in metrics:
                return name
    return None


def run_page(board: Board, run: RunView) -> dict[str, Any]:
    """Everything a run's page shows."""
    study = board.studies.get(run.study)
    objective = board.objective(study) if study is not None else None
    return {
        "run": run_row(run, objective),
        "study": run.study,
        "progress": [{"step": s, "metrics": m} for s, m in run.progress],
        "steps_dropped": run.steps_dropped,
        "result": dict(run.result) if run.result is not None else None,
    }


def letters_page(board: Board, now: float | None = None) -> dict[str, Any]:
    """The recent dead letters, newest first."""
    now = time.time() if now is None else now
    return {
        "letters": [
            {
                "reason": v.reason,
                "field": v.field,
                "message": v.message,
                "source": v.source,
                "study": v.study,
                "at": v.at,
                "ago": _ago(v.at, now),
                "preview": v.preview,
                "size": v.size,
                "truncated": v.truncated,
            }
            for v in reversed(board.letters)
        ],
        "by_reason": board.letters_by_reason(now),
    }
