"""What `bridge run` and `bridge check` show people: progress on stderr, the results table on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from bridge.contract.results import ProgressEvent, RunResult, RunStatus

# rich is imported where it draws (a live bar on a terminal, a table): `bridge run --output jsonl` into a pipe, what
# programs run, never needs it.
if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

_STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.STOPPED: "yellow",
    RunStatus.SKIPPED: "dim",
}


def fmt_value(value: Any) -> str:
    """One value as every table and summary line shows it (floats to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def fmt_mapping(values: Mapping[str, Any]) -> str:
    """`a=1 b=0.01` for a table cell."""
    return " ".join(f"{k}={fmt_value(v)}" for k, v in values.items())


def params_cell(params: Mapping[str, Any], given: Collection[str]) -> str:
    """Every param a run gets, as rich markup: those it was given as they are, the defaults it took dimmed
    (`bridge check` and `bridge run` show the same cell for the same run)."""
    from rich.markup import escape

    return " ".join(
        escape(f"{k}={fmt_value(v)}") if k in given else f"[dim]{escape(f'{k}={fmt_value(v)}')}[/dim]"
        for k, v in params.items()
    )


class ProgressListener:
    """Shows an operation's progress: a live bar on a terminal, one plain line per event otherwise."""

    def __init__(self, total: int, name: str, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._total = total
        self._done = 0
        self._live = self._stream.isatty()
        self._progress: Progress | None = None
        self._task: Any = None
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._task = self._progress.add_task(name, total=total, last="")

    def __enter__(self) -> ProgressListener:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _line(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        if self._progress is None:
            again = f" (attempt {attempt})" if attempt > 1 else ""
            self._line(f"run {index} started{again} [{run_id}]")

    async def run_progress(self, event: ProgressEvent) -> None:
        if self._progress is not None:
            self._progress.update(self._task, last=f"step {event.step}: {fmt_mapping(event.metrics)}")

    async def run_finished(self, result: RunResult) -> None:
        self._done += 1
        note = " (cached)" if result.cached else ""
        summary = fmt_mapping(result.outputs) or (result.error.message if result.error else "")
        if self._progress is not None:
            self._progress.update(self._task, advance=1, last=f"run {result.index} {result.status.value}{note}")
        else:
            self._line(f"run {result.index} {result.status.value}{note} [{self._done}/{self._total}] {summary}")


def results_table(results: Sequence[RunResult], typed: Mapping[int, Mapping[str, Any]] | None = None) -> Table:
    """One row per run: params, status, outputs, attempts, duration, error. With `typed` (each run's every param
    by index, defaults filled), the params cell shows them all as `bridge check` does, else the given ones."""
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column in ("#", "status", "params", "outputs", "attempt", "duration", "error"):
        table.add_column(column, overflow="fold")
    for r in results:
        status = f"[{_STATUS_STYLE[r.status]}]{r.status.value}[/]" + (" (cached)" if r.cached else "")
        table.add_row(
            str(r.index),
            status,
            params_cell(typed[r.index], r.params) if typed and r.index in typed else params_cell(r.params, r.params),
            fmt_mapping(r.outputs),
            str(r.attempt),
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "",
            f"{r.error.type}: {r.error.message}" if r.error and r.status is not RunStatus.SUCCEEDED else "",
        )
    return table


def print_results(
    results: Sequence[RunResult],
    output: str,
    stream: TextIO | None = None,
    typed: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """The results on stdout: a table (every param of each run with `typed`), or one `bridge.result/v1` JSON per
    line."""
    out = stream or sys.stdout
    if output == "jsonl":
        for r in results:
            out.write(r.to_json() + "\n")
        out.flush()
        return
    from rich.console import Console

    Console(file=out, width=max(Console(file=out).width, 120)).print(results_table(results, typed))


def print_runs(
    rows: Iterable[Mapping[str, Any]], stream: TextIO | None = None, given: Sequence[Collection[str]] = ()
) -> None:
    """The expanded runs of `bridge check`: one row per run with its typed params (defaults dimmed, the params
    named in `given` for that run not)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(header_style="bold")
    table.add_column("#")
    table.add_column("params", overflow="fold")
    for i, params in enumerate(rows):
        table.add_row(str(i), params_cell(params, given[i] if i < len(given) else params))
    out = stream or sys.stdout
    Console(file=out, width=max(Console(file=out).width, 120)).print(table)
