"""The study's plots, as a person reads them: one dot per result under a best-so-far line that only improves,
parallel coordinates over numeric and categorical params, and early-stopped runs marked apart."""

from __future__ import annotations

import re

from bridge.dash.plots import history_svg, parallel_svg, progress_svg


def _best_line_ys(svg: str) -> list[float]:
    points = re.search(r'class="best"[^>]*points="([^"]+)"', svg)
    assert points is not None
    return [float(p.split(",")[1]) for p in points.group(1).split()]


def test_history_has_one_dot_per_result_and_a_best_line_that_only_improves() -> None:
    values = [0.9, 0.5, 0.7, 0.3, 0.6]
    svg = str(history_svg([(i + 1, v, f"run-{i}") for i, v in enumerate(values)], metric="loss", maximize=False))
    assert svg.count('class="point"') == 5
    ys = _best_line_ys(svg)
    assert ys == sorted(ys)  # SVG's y grows downwards: a falling loss is a line going down the picture, never up
    maximized = str(history_svg([(i + 1, v, "r") for i, v in enumerate(values)], metric="acc", maximize=True))
    up = _best_line_ys(maximized)
    assert up == sorted(up, reverse=True)


def test_parallel_coordinates_draw_a_line_per_run_over_numeric_and_categorical_axes() -> None:
    runs = [({"lr": 0.1, "opt": "adam"}, 0.5), ({"lr": 0.01, "opt": "sgd"}, 0.3), ({"lr": 0.001, "opt": "adam"}, 0.4)]
    svg = str(parallel_svg(runs, metric="loss", maximize=False))
    assert svg.count('class="run-line"') == 3
    assert [m for m in re.findall(r'class="axis-name"[^>]*>([^<]+)<', svg)] == ["lr", "opt", "loss"]
    assert ">adam<" in svg and ">sgd<" in svg


def test_early_stopped_runs_are_marked_in_the_intermediate_values() -> None:
    svg = str(
        progress_svg([("a", [(0, 0.9), (1, 0.7), (2, 0.5)], False), ("b", [(0, 0.95), (1, 0.9)], True)], metric="loss")
    )
    assert svg.count('class="progress-line"') == 1
    assert svg.count('class="progress-line early-stopped"') == 1
    assert svg.count('class="stop-mark"') == 1


def test_empty_plots_say_so() -> None:
    assert "no result" in str(history_svg([], metric="loss", maximize=False))
    assert "no intermediate values" in str(progress_svg([("a", [], False)], metric="loss"))
