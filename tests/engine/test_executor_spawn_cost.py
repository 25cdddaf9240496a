"""Starting runs stays cheap in a big bridge process: with setpriv, nothing runs between fork and exec, so the
spawn is a vfork instead of a copy of the whole process (page tables and all) that a preexec_fn needs. The
difference grows with the bridge's memory; measured here as a ratio in the same test, on the same machine."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.executors.local import LocalExecutor
from bridge.ports import MetricRecord, RunRequest

BALLAST_BYTES = 256 * 1024 * 1024  # a bridge with its clients, caches and queues: a few hundred MB resident
PAGE = 4096
STARTS = 24


def _ignore(_record: MetricRecord) -> None:
    return None


async def _start_and_wait(executor: LocalExecutor, root: Path, n: int) -> float:
    request = RunRequest(
        run_id=f"r{n}",
        attempt=1,
        argv=["/bin/true"],
        env={},
        cwd=root,
        attempt_dir=root / f"r{n}" / "attempts" / "1",
        outputs_dir=root / f"r{n}" / "outputs",
    )
    began = time.perf_counter()
    await (await executor.start(request, _ignore)).wait()
    return time.perf_counter() - began


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not on PATH")
async def test_setpriv_starts_runs_several_times_faster_from_a_big_process(tmp_path: Path) -> None:
    ballast = bytearray(BALLAST_BYTES)
    ballast[::PAGE] = b"\1" * len(range(0, BALLAST_BYTES, PAGE))  # resident, as a real bridge's memory is
    no_setpriv: Callable[[str], str | None] = lambda _name: None  # noqa: E731 - the fallback, as a dependency
    fast, slow = LocalExecutor(), LocalExecutor(which=no_setpriv)
    assert fast.setpriv is not None and slow.setpriv is None
    spent = {"setpriv": 0.0, "preexec_fn": 0.0}
    for n in range(STARTS):  # interleaved, so a change in the machine's load weighs on both alike
        spent["setpriv"] += await _start_and_wait(fast, tmp_path / "setpriv", n)
        spent["preexec_fn"] += await _start_and_wait(slow, tmp_path / "preexec_fn", n)
    del ballast
    assert spent["preexec_fn"] > 2 * spent["setpriv"], spent
