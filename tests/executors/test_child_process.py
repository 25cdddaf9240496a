"""A run's process is started and reaped without a thread per child (`bridge/executors/child.py`), and the
exit status is the same on the fallback path asyncio's own subprocesses take where there is no pidfd."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from bridge.executors import child
from bridge.executors.base import MetricRecord
from bridge.executors.local import LocalExecutor, ProcessRequest


def _ignore(_record: MetricRecord) -> None:
    return None


def _request(root: Path, run_id: str, code: str) -> ProcessRequest:
    return ProcessRequest(
        run_id=run_id,
        attempt=1,
        argv=[sys.executable, "-c", code],
        env={"BRIDGE_RUN_ID": run_id},
        cwd=root,
        attempt_dir=root / "runs" / run_id / "attempts" / "1",
        outputs_dir=root / "runs" / run_id / "outputs",
    )


async def test_runs_in_flight_cost_no_thread_each(tmp_path: Path) -> None:
    # Each run blocks reading one byte of a FIFO this test holds open, until the test writes them.
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    writer = os.open(gate, os.O_RDWR)  # held open: a run that opens the FIFO late still finds a writer
    wait_for_gate = f"import os\nos.read(os.open({str(gate)!r}, os.O_RDONLY), 1)"
    executor = LocalExecutor(8)
    before = threading.active_count()
    try:
        handles = [await executor.spawn(_request(tmp_path, f"r{i}", wait_for_gate), _ignore) for i in range(6)]
        # asyncio's default child watcher on Python 3.11 would hold one thread per process here.
        assert threading.active_count() == before
        os.write(writer, b"x" * len(handles))
        ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), timeout=30)
        assert [e.exit_code for e in ends] == [0] * 6
    finally:
        os.close(writer)
        await executor.close()


@pytest.mark.parametrize("pidfd", [True, False])
@pytest.mark.parametrize(
    ("code", "status"),
    [("raise SystemExit(7)", 7), ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM)],
)
async def test_the_exit_status_is_the_processes_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool, code: str, status: int
) -> None:
    monkeypatch.setattr(child, "_PIDFD", pidfd)
    executor = LocalExecutor(1)
    try:
        handle = await executor.spawn(_request(tmp_path, "r", code), _ignore)
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
    finally:
        await executor.close()
    assert ended.exit_code == status
