"""Re-running after an interrupt resumes: finished runs are not run again, even after `kill -9` of `bridge run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.cli_support import bridge, executions, process_alive, write_operation
from tests.polling import wait_until


def test_resume_after_kill_9_runs_only_what_had_not_finished(tmp_path: Path) -> None:
    record, gate = tmp_path / "rec", tmp_path / "gate"
    f = write_operation(tmp_path, [{}, {}, {"wait_for": str(gate)}, {}], record, matrix={"concurrency": 1})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "-f", str(f), "--output", "jsonl"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: any(e["name"] == "r2" for e in executions(record)), timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    run_pid = int(next(p for p in record.glob("r2.*.json")).name.split(".")[2])
    wait_until(lambda: not process_alive(run_pid), timeout=60)  # the run did not outlive the killed bridge

    gate.touch()
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["status"] for r in results] == ["succeeded"] * 4
    runs = [e["name"] for e in executions(record)]
    assert sorted(runs) == ["r0", "r1", "r2", "r2", "r3"]  # only the run in flight ran again
    assert results[2]["attempt"] == 2
    assert "resumed" in out.stderr


def test_sigint_stops_cleanly_exits_130_and_resumes(tmp_path: Path) -> None:
    record, gate = tmp_path / "rec", tmp_path / "gate"
    f = write_operation(tmp_path, [{}, {"wait_for": str(gate)}, {}], record, matrix={"concurrency": 1})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "-f", str(f)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: any(e["name"] == "r1" for e in executions(record)), timeout=60)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped" in stdout and "skipped" in stdout

    gate.touch()
    out = bridge("run", "-f", str(f), "--output", "jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["status"] for x in out.stdout.splitlines()] == ["succeeded"] * 3
    assert sorted(e["name"] for e in executions(record)) == ["r0", "r1", "r1", "r2"]


def test_a_finished_operation_run_again_runs_nothing(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    f = write_operation(tmp_path, [{"values": "0.1"}, {"exitcode": 2}], record)
    first = bridge("run", "-f", str(f), cwd=tmp_path)
    second = bridge("run", "-f", str(f), cwd=tmp_path)
    assert first.returncode == second.returncode == 1
    assert len(executions(record)) == 2
