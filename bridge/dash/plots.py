"""The study page's plots, drawn here as SVG: the optimization history, parallel coordinates, intermediate values.

Server-side, so the page needs no plotting library and the live update is one fragment swap. Every piece of text
that came from a topic (a param name, a category, a run id) goes through `_text`, and numbers are formatted here:
nothing else reaches the markup. No I/O.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from bridge.dash.objective import number

W, H = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 26, 30
MAX_AXES = 12  # parallel coordinates: params beyond these are left out (the table has them all)


def _text(value: object, limit: int = 60) -> str:
    text = str(value)
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "\u2026", quote=True)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class _Scale:
    low: float
    high: float
    to_low: float
    to_high: float

    @classmethod
    def of(cls, values: Sequence[float], to_low: float, to_high: float) -> _Scale:
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        if high == low:
            low, high = low - 0.5, high + 0.5
        return cls(low, high, to_low, to_high)

    def __call__(self, value: float) -> float:
        return self.to_low + (value - self.low) / (self.high - self.low) * (self.to_high - self.to_low)


def _svg(body: list[str], label: str, *, width: int = W, height: int = H) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{_text(label)}" class="plot">'
    )
    return Markup(head + "".join(body) + "</svg>")  # every part was escaped (_text) or formatted (_fmt)


def _axes(x: _Scale, y: _Scale, x_label: str, y_label: str) -> list[str]:
    bottom, left = H - PAD_B, PAD_L
    out = [
        f'<line class="axis" x1="{left}" y1="{PAD_T}" x2="{left}" y2="{bottom}" stroke="#888"/>',
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{W - PAD_R}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{W - PAD_R}" y="{H - 4}" text-anchor="end" font-size="11">{_text(x_label)}</text>',
        f'<text x="4" y="12" font-size="11">{_text(y_label)}</text>',
    ]
    for value in (y.low, (y.low + y.high) / 2, y.high):
        out.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(value)}</text>')
    for value in (x.low, x.high):
        out.append(
            f'<text x="{x(value):.1f}" y="{bottom + 14}" text-anchor="middle" font-size="10">{_fmt(value)}</text>'
        )
    return out


def history_svg(points: Sequence[tuple[int, float, str]], *, metric: str, maximize: bool) -> Markup:
    """One dot per result (its arrival seq, its value, its run id) and the best-so-far line over them."""
    if not points:
        return _svg(['<text x="20" y="40" font-size="13">no result with this objective yet</text>'], "history")
    x = _Scale.of([float(p[0]) for p in points], PAD_L + 6, W - PAD_R)
    y = _Scale.of([p[1] for p in points], H - PAD_B - 6, PAD_T)
    body = _axes(x, y, "result #", f"{metric} ({'max' if maximize else 'min'})")
    best: float | None = None
    line: list[str] = []
    for seq, value, run_id in points:
        if best is None or (value > best if maximize else value < best):
            if best is not None:
                line.append(f"{x(seq):.1f},{y(best):.1f}")  # a step: the best holds until the new one
            best = value
        line.append(f"{x(seq):.1f},{y(best):.1f}")
        body.append(
            f'<circle class="point" cx="{x(seq):.1f}" cy="{y(value):.1f}" r="3" fill="#4a7bd0" '
            f'data-run="{_text(run_id, 200)}"><title>#{seq} {_fmt(value)} {_text(run_id)}</title></circle>'
        )
    body.append(f'<polyline class="best" fill="none" stroke="#d0542a" stroke-width="2" points="{" ".join(line)}"/>')
    return _svg(body, f"optimization history of {metric}")


def _axis_values(runs: Sequence[Mapping[str, Any]], name: str) -> tuple[list[float] | None, list[str]]:
    """A param's values as numbers when all are, else the sorted categories (compared as text)."""
    raw = [r.get(name) for r in runs]
    numbers = [number(v) for v in raw]
    if all(n is not None for n in numbers):
        return [n for n in numbers if n is not None], []
    return None, sorted({str(v) for v in raw})


def parallel_svg(runs: Sequence[tuple[Mapping[str, Any], float]], *, metric: str, maximize: bool) -> Markup:
    """Parallel coordinates: one axis per param (numeric or categorical) and the objective's last; one line per
    run, the better ones darker."""
    if not runs:
        return _svg(['<text x="20" y="40" font-size="13">no run with this objective yet</text>'], "parallel")
    names = sorted({k for params, _ in runs for k in params})[:MAX_AXES]
    params = [p for p, _ in runs]
    columns = [*names, metric]
    step = (W - PAD_L - PAD_R) / max(1, len(columns) - 1)
    top, bottom = PAD_T + 12, H - PAD_B
    scales: list[tuple[_Scale, list[str]]] = []
    body: list[str] = []
    for i, name in enumerate(columns):
        cx = PAD_L + i * step
        if name == metric and i == len(columns) - 1:
            numeric: list[float] | None = [v for _, v in runs]
            categories: list[str] = []
        else:
            numeric, categories = _axis_values(params, name)
        values = numeric if numeric is not None else [float(j) for j in range(len(categories))]
        scale = _Scale.of(values, bottom, top)
        scales.append((scale, categories))
        body.append(f'<line class="axis" x1="{cx:.1f}" y1="{top}" x2="{cx:.1f}" y2="{bottom}" stroke="#888"/>')
        body.append(
            f'<text class="axis-name" x="{cx:.1f}" y="{PAD_T}" text-anchor="middle" font-size="11">'
            f"{_text(name, 24)}</text>"
        )
        ticks = (
            [(scale(float(j)), c) for j, c in enumerate(categories)]
            if categories
            else [
                (scale(scale.low), _fmt(scale.low)),
                (scale(scale.high), _fmt(scale.high)),
            ]
        )
        for ty, label in ticks[:12]:
            body.append(f'<text x="{cx + 3:.1f}" y="{ty + 3:.1f}" font-size="9">{_text(label, 16)}</text>')
    values = [v for _, v in runs]
    quality = _Scale.of(values, 0.0, 1.0)
    for params_of_run, value in runs:
        share = quality(value) if maximize else 1 - quality(value)
        points = []
        for i, name in enumerate(columns):
            scale, categories = scales[i]
            if i == len(columns) - 1:
                raw: float | None = value
            elif categories:
                raw = float(categories.index(str(params_of_run.get(name))))
            else:
                raw = number(params_of_run.get(name))
            if raw is not None:
                points.append(f"{PAD_L + i * step:.1f},{scale(raw):.1f}")
        body.append(
            f'<polyline class="run-line" fill="none" stroke="#1f4e99" stroke-opacity="{0.15 + 0.8 * share:.2f}" '
            f'points="{" ".join(points)}"/>'
        )
    return _svg(body, f"parallel coordinates of the params against {metric}")


def progress_svg(runs: Sequence[tuple[str, Sequence[tuple[float, float]], bool]], *, metric: str) -> Markup:
    """Intermediate values of `metric` per run (step, value); an early-stopped run dashed, with a cross at its
    last point."""
    series = [(r, pts, stopped) for r, pts, stopped in runs if pts]
    if not series:
        return _svg(['<text x="20" y="40" font-size="13">no intermediate values yet</text>'], "progress")
    xs = [s for _, pts, _ in series for s, _ in pts]
    ys = [v for _, pts, _ in series for _, v in pts]
    x = _Scale.of(xs, PAD_L + 6, W - PAD_R)
    y = _Scale.of(ys, H - PAD_B - 6, PAD_T)
    body = _axes(x, y, "step", metric)
    for run_id, pts, stopped in series:
        coords = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pts)
        kind = "progress-line early-stopped" if stopped else "progress-line"
        dash = ' stroke-dasharray="4 3"' if stopped else ""
        body.append(
            f'<polyline class="{kind}" fill="none" stroke="{"#c03030" if stopped else "#3a8f5c"}"{dash} '
            f'points="{coords}" data-run="{_text(run_id, 200)}"><title>{_text(run_id)}</title></polyline>'
        )
        if stopped:
            lx, ly = x(pts[-1][0]), y(pts[-1][1])
            body.append(
                f'<path class="stop-mark" d="M{lx - 4:.1f},{ly - 4:.1f}L{lx + 4:.1f},{ly + 4:.1f}'
                f'M{lx - 4:.1f},{ly + 4:.1f}L{lx + 4:.1f},{ly - 4:.1f}" stroke="#c03030" stroke-width="2"/>'
            )
    return _svg(body, f"intermediate values of {metric}")
