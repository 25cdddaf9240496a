"""A run never outlives the bridge process that started it, even one killed with -9 (it gets SIGKILL from the
kernel): when setpriv starts runs, and with the preexec_fn fallback alike. The pid the bridge records is the
run's own in both cases (setpriv execs the run in place)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A bridge process in miniature: starts one run with the LocalExecutor, prints the run's pid once the run has
# reported (so it is surely running), then waits for the run, until it is killed.
HOLDER = """
import asyncio, shutil, sys
from pathlib import Path
from bridge.executors.local import LocalExecutor, ProcessRequest
from bridge.logs import configure


RUN = "import time; from bridge.tracking import log_metrics; log_metrics(up=1.0); time.sleep(600)"

async def main(root: Path, use_setpriv: bool) -> None:
    executor = LocalExecutor(which=shutil.which if use_setpriv else (lambda _name: None))
    assert (executor.setpriv is not None) == use_setpriv
    up = asyncio.Event()
    attempt_dir = root / "attempts" / "1"
    request = ProcessRequest(
        run_id="r", attempt=1, argv=[sys.executable, "-c", RUN], cwd=root, attempt_dir=attempt_dir,
        env={"BRIDGE_RUN_ID": "r", "BRIDGE_METRICS_FILE": str(attempt_dir / "metrics.jsonl")},
        outputs_dir=root / "outputs",
    )
    handle = await executor.spawn(request, lambda _record: up.set())
    waiting = asyncio.ensure_future(handle.wait())  # metrics are delivered while the run is waited for
    await up.wait()
    print(handle.pid, flush=True)
    await waiting

configure("warning")
asyncio.run(main(Path(sys.argv[1]), sys.argv[2] == "setpriv"))
"""

MODES = [
    pytest.param(
        "setpriv",
        marks=pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not on PATH"),
    ),
    "preexec_fn",
]


def _alive(pidfd: int) -> bool:
    # A pidfd turns readable when its process ends (a zombie has ended): nothing to poll, nothing to reap.
    return not select.select([pidfd], [], [], 0)[0]


@pytest.mark.parametrize("mode", MODES)
def test_a_run_dies_when_its_bridge_is_killed_with_9(tmp_path: Path, mode: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stderr is not None
        assert select.select([holder.stdout], [], [], 60)[0], "the holder's run did not start within 60 s"
        line = holder.stdout.readline()
        assert line.strip(), f"the holder ended before its run started: {holder.stderr.read()}"
        pid = int(line)
        pidfd = os.pidfd_open(pid)
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert argv[0] == sys.executable.encode(), "the recorded pid is not the run's own process"
            holder.kill()
            holder.wait(timeout=30)
            ended = select.select([pidfd], [], [], 30)[0]
            assert ended, f"run {pid} is still running 30 s after its bridge was killed with -9"
        finally:
            if _alive(pidfd):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
    finally:
        holder.kill()
        holder.communicate()
