"""A run reports only what it logged itself: a metrics file that an earlier bridge process left in the same
attempt folder is not read as this run's (its logs are started afresh too)."""

from __future__ import annotations

import sys
from pathlib import Path

from bridge.executors.base import MetricRecord
from bridge.executors.local import LocalExecutor, ProcessRequest


async def test_a_metrics_file_left_in_the_attempt_folder_is_not_this_runs(tmp_path: Path) -> None:
    attempt_dir = tmp_path / "runs" / "r" / "attempts" / "1"
    attempt_dir.mkdir(parents=True)
    (attempt_dir / "metrics.jsonl").write_text('{"outputs": {"accuracy": 0.1}}\n{"metrics": {"loss": 7.0}}\n')
    (attempt_dir / "stdout.log").write_text("the earlier process's output\n")
    seen: list[MetricRecord] = []
    request = ProcessRequest(
        run_id="r",
        attempt=1,
        argv=[
            sys.executable,
            "-c",
            "from bridge.tracking import log_metrics, log_outputs; "
            "log_metrics(step=0, loss=0.7); log_outputs(loss=0.5)",
        ],
        env={"BRIDGE_RUN_ID": "r", "BRIDGE_METRICS_FILE": str(attempt_dir / "metrics.jsonl")},
        cwd=tmp_path,
        attempt_dir=attempt_dir,
        outputs_dir=tmp_path / "runs" / "r" / "outputs",
    )
    handle = await LocalExecutor().spawn(request, seen.append)
    ended = await handle.wait()
    assert ended.exit_code == 0
    assert ended.outputs == {"loss": 0.5}
    assert [dict(r.metrics) for r in seen if r.metrics] == [{"loss": 0.7}]
    assert (attempt_dir / "stdout.log").read_text() == ""


async def test_a_run_that_reports_nothing_reports_no_outputs(tmp_path: Path) -> None:
    attempt_dir = tmp_path / "attempts" / "1"
    request = ProcessRequest(
        run_id="r",
        attempt=1,
        argv=[sys.executable, "-c", "pass"],
        env={"BRIDGE_RUN_ID": "r", "BRIDGE_METRICS_FILE": str(attempt_dir / "metrics.jsonl")},
        cwd=tmp_path,
        attempt_dir=attempt_dir,
        outputs_dir=tmp_path / "outputs",
    )
    ended = await (await LocalExecutor().spawn(request, lambda _record: None)).wait()
    assert (ended.exit_code, ended.outputs, ended.logged_outputs) == (0, {}, False)
    assert (tmp_path / "outputs").is_dir()
