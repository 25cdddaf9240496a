"""`bridge run --executor ray` killed with -9 and started again re-attaches to the runs still going on Ray, by
their run id, instead of running them again: each run executes once, as attempt 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_support import bridge, executions, process_alive, write_operation
from tests.polling import wait_until
from tests.ray_cluster import RayCluster


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_restarted_bridge_reattaches_to_runs_still_going(tmp_path: Path, ray_cluster: RayCluster) -> None:
    record, gate = tmp_path / "rec", tmp_path / "gate"
    f = write_operation(tmp_path, [{"wait_for": str(gate)}, {"wait_for": str(gate)}], record)
    command = [sys.executable, "-m", "bridge", "run", "-f", str(f), "--output", "jsonl"]
    ray_flags = ["--executor", "ray", "--address", ray_cluster.address]
    proc = subprocess.Popen([*command, *ray_flags], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(executions(record)) == 2, timeout=120)
        # Both started and recorded where they run: the ledger's last lines say so.
        ledger = next((tmp_path / ".bridge" / "operations").glob("*/ledger.jsonl"))
        wait_until(lambda: ledger.read_text().count('"event":"started"') == 2, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    pids = [int(p.name.split(".")[2]) for p in record.glob("*.json")]
    assert all(process_alive(pid) for pid in pids)  # on Ray, the runs outlive the bridge that started them

    gate.touch()
    out = bridge("run", "-f", str(f), "--output", "jsonl", *ray_flags, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["status"], r["attempt"]) for r in results] == [("succeeded", 1), ("succeeded", 1)]
    assert sorted(str(e["name"]) for e in executions(record)) == ["r0", "r1"]  # re-attached, never run again
