"""A bridge started again kills what an earlier one left running of a run, from the dispatch info the ledger kept:
the run's main process, recognised by its recorded start time even while its environment reads empty (as it does
during an exec: the cause of an old flake), and its whole process group even once the main process was killed
with its bridge and only grandchildren live on. Nothing that is not the run's is touched: a record of another
run, of another boot, or of a pid that is gone. Whether setpriv starts runs or not."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.executors.base import MetricRecord
from bridge.executors.local import LocalExecutor, LocalRun, ProcessRequest
from tests.executors.grandchild import Grandchild
from tests.polling import eventually

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

SLEEP = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"


def _ignore(_record: MetricRecord) -> None:
    return None


def _request(root: Path, run_id: str, argv: list[str]) -> ProcessRequest:
    return ProcessRequest(
        run_id=run_id,
        attempt=1,
        argv=argv,
        env={"BRIDGE_RUN_ID": run_id},
        cwd=root,
        attempt_dir=root / run_id / "attempts" / "1",
        outputs_dir=root / run_id / "outputs",
    )


def _exists(path: Path) -> bool:
    return path.exists()


@pytest.mark.parametrize("which", WHICH)
async def test_the_run_left_running_is_killed_and_nothing_else(tmp_path: Path, which: Which) -> None:
    up = tmp_path / "up"
    argv = [sys.executable, "-c", SLEEP, str(up)]
    handle = await LocalExecutor(which=which).spawn(_request(tmp_path, "left-behind", argv), _ignore)
    assert isinstance(handle, LocalRun)
    later = LocalExecutor(which=which)  # the bridge after a restart: it only has the ledger's dispatch info
    try:
        await eventually(lambda: _exists(up), timeout=30)
        info = json.loads(json.dumps(dict(handle.reattach_info)))  # as it comes back from the ledger
        assert not await later.reap_orphan("another-run", info)  # that process is not that run
        assert not await later.reap_orphan("left-behind", {**info, "boot_id": "another-boot"})
        assert await later.reap_orphan("left-behind", info)
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == -signal.SIGKILL
    finally:
        await handle.stop(grace_s=0)


@pytest.mark.parametrize("which", WHICH)
async def test_a_run_is_recognised_by_its_record_when_its_environment_reads_empty(tmp_path: Path, which: Which) -> None:
    # `env -i` leaves the run with no environment at all: what /proc shows of any run for a moment as it execs,
    # which is right after start under setpriv (setpriv, then the run). Asked then, the bridge must still know it.
    argv = ["env", "-i", sys.executable, "-c", "import time; time.sleep(600)"]
    handle = await LocalExecutor(which=which).spawn(_request(tmp_path, "bare", argv), _ignore)
    assert isinstance(handle, LocalRun)
    try:
        assert await LocalExecutor(which=which).reap_orphan("bare", handle.reattach_info)
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == -signal.SIGKILL
    finally:
        await handle.stop(grace_s=0)


async def test_a_pid_that_is_gone_is_not_reaped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", SLEEP, str(tmp_path / "up")]
    handle = await LocalExecutor().spawn(_request(tmp_path, "r", argv), _ignore)
    assert isinstance(handle, LocalRun) and handle.pid is not None
    await handle.stop(grace_s=0)
    await handle.wait()
    assert not await LocalExecutor().reap_orphan("r", handle.reattach_info)
    assert not await LocalExecutor().reap_orphan("r", {"pid": handle.pid})
    assert not await LocalExecutor().reap_orphan("r", {})


# A bridge process in miniature: starts a run that leaves a grandchild, prints the run's dispatch info once the
# grandchild is up, then waits for the run until it is killed with -9.
HOLDER = """
import asyncio, json, shutil, sys
from pathlib import Path
from bridge.executors.local import LocalExecutor, ProcessRequest
from bridge.logs import configure

from tests.executors import grandchild

async def main(root: Path, use_setpriv: bool) -> None:
    executor = LocalExecutor(which=shutil.which if use_setpriv else (lambda _name: None))
    pidfile = root / "grandchild.pid"
    request = ProcessRequest(
        run_id="orphaned", attempt=1, argv=grandchild.argv(pidfile, "hang"), env={"BRIDGE_RUN_ID": "orphaned"},
        cwd=root, attempt_dir=root / "attempts" / "1", outputs_dir=root / "outputs",
    )
    handle = await executor.spawn(request, lambda _record: None)
    waiting = asyncio.ensure_future(handle.wait())
    while not pidfile.exists() or not pidfile.read_text().strip():
        await asyncio.sleep(0.01)
    print(json.dumps(dict(handle.reattach_info)), flush=True)
    await waiting

configure("warning")
asyncio.run(main(Path(sys.argv[1]), sys.argv[2] == "setpriv"))
"""


def _ended(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


@pytest.mark.parametrize("which", WHICH)
async def test_what_a_run_left_is_killed_after_its_bridge_and_main_process_died(tmp_path: Path, which: Which) -> None:
    mode = "setpriv" if which is shutil.which else "preexec_fn"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(tmp_path), mode, stdout=asyncio.subprocess.PIPE, cwd=Path.cwd()
    )
    assert holder.stdout is not None
    left: Grandchild | None = None
    try:
        info = json.loads(await asyncio.wait_for(holder.stdout.readline(), timeout=60))
        left = Grandchild(int((tmp_path / "grandchild.pid").read_text()))
        main_process = os.pidfd_open(info["pid"])
        try:
            holder.kill()  # kill -9 of the bridge: the kernel kills the run's main process (PDEATHSIG)
            await holder.wait()
            await eventually(lambda: _ended(main_process), timeout=30)
        finally:
            os.close(main_process)
        assert not left.ended()  # its grandchild lives on: nothing but the reaper will end it

        later = LocalExecutor(which=which)
        assert not await later.reap_orphan("another-run", info)
        assert not await later.reap_orphan("orphaned", {**info, "boot_id": "another-boot"})
        assert not left.ended()
        assert await later.reap_orphan("orphaned", info)
        await left.wait_ended()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        if left is not None:
            left.close()
