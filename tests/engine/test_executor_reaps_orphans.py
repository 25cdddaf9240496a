"""A bridge started again kills the run an earlier one left running, found by the pid in the ledger and checked
by its run id (a pid may have been reused by another process), whether setpriv starts runs or not."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.executors.local import LocalExecutor, LocalRun
from bridge.ports import MetricRecord, RunRequest

Which = Callable[[str], str | None]


def _no_setpriv(_name: str) -> None:
    return None


WHICH = [
    pytest.param(
        shutil.which,
        id="setpriv",
        marks=pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not on PATH"),
    ),
    pytest.param(_no_setpriv, id="preexec_fn"),
]


def _ignore(_record: MetricRecord) -> None:
    return None


def _sleeper(root: Path, run_id: str) -> RunRequest:
    return RunRequest(
        run_id=run_id,
        attempt=1,
        argv=[sys.executable, "-c", "import time; time.sleep(600)"],
        env={"BRIDGE_RUN_ID": run_id},
        cwd=root,
        attempt_dir=root / run_id / "attempts" / "1",
        outputs_dir=root / run_id / "outputs",
    )


@pytest.mark.parametrize("which", WHICH)
async def test_the_run_left_running_is_killed_and_nothing_else(tmp_path: Path, which: Which) -> None:
    handle = await LocalExecutor(which=which).start(_sleeper(tmp_path, "left-behind"), _ignore)
    assert isinstance(handle, LocalRun) and handle.pid is not None
    later = LocalExecutor(which=which)  # the bridge after a restart: it only has the ledger's dispatch info
    try:
        assert not await later.reap_orphan("another-run", {"pid": handle.pid})  # that pid is not that run
        assert await later.reap_orphan("left-behind", {"pid": handle.pid})
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == -signal.SIGKILL
    finally:
        await handle.stop(grace_s=0)


async def test_a_pid_that_is_gone_is_not_reaped(tmp_path: Path) -> None:
    handle = await LocalExecutor().start(_sleeper(tmp_path, "r"), _ignore)
    assert isinstance(handle, LocalRun) and handle.pid is not None
    await handle.stop(grace_s=0)
    await handle.wait()
    assert not await LocalExecutor().reap_orphan("r", {"pid": handle.pid})
    assert not await LocalExecutor().reap_orphan("r", {})
