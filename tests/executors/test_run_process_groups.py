"""Nothing a run started outlives it: when its main process ends (success or failure), on stop (even what
ignores SIGTERM), on timeout, and when the executor closes (the bridge exiting), its whole process group,
grandchildren included, is killed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.results import RunStatus
from bridge.executors.base import MetricRecord
from bridge.executors.local import LocalExecutor, LocalRun, ProcessRequest
from tests.engine_support import Engine
from tests.executors import grandchild
from tests.executors.grandchild import Grandchild


def _ignore(_record: MetricRecord) -> None:
    return None


def _request(root: Path, argv: list[str]) -> ProcessRequest:
    return ProcessRequest(
        run_id="r",
        attempt=1,
        argv=argv,
        env={"BRIDGE_RUN_ID": "r"},
        cwd=root,
        attempt_dir=root / "runs" / "r" / "attempts" / "1",
        outputs_dir=root / "runs" / "r" / "outputs",
    )


@pytest.mark.parametrize("status", [0, 3])
async def test_what_a_run_left_is_killed_when_its_main_process_exits(tmp_path: Path, status: int) -> None:
    pidfile, gate = tmp_path / "grandchild.pid", tmp_path / "gate"
    executor = LocalExecutor()
    handle = await executor.spawn(_request(tmp_path, grandchild.argv(pidfile, str(status), gate)), _ignore)
    left = await Grandchild.of(pidfile)
    try:
        assert not left.ended()
        gate.touch()
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == status
        await left.wait_ended()
    finally:
        left.close()
        await executor.close()


async def test_stop_kills_the_whole_group_even_what_ignores_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    executor = LocalExecutor()
    handle = await executor.spawn(_request(tmp_path, grandchild.argv(pidfile, "hang")), _ignore)
    left = await Grandchild.of(pidfile)
    try:
        await asyncio.wait_for(handle.stop(grace_s=5), timeout=30)
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == -signal.SIGTERM
        await left.wait_ended()
    finally:
        left.close()
        await executor.close()


async def test_close_kills_every_run_still_running_with_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    executor = LocalExecutor()
    handle = await executor.spawn(_request(tmp_path, grandchild.argv(pidfile, "hang")), _ignore)
    assert isinstance(handle, LocalRun)
    left = await Grandchild.of(pidfile)
    try:
        await asyncio.wait_for(executor.close(), timeout=30)
        ended = await asyncio.wait_for(handle.wait(), timeout=30)
        assert ended.exit_code == -signal.SIGKILL
        await left.wait_ended()
    finally:
        left.close()


def _hanging_component() -> dict[str, Any]:
    return {
        "kind": "component",
        "name": "leaves-a-grandchild",
        "inputs": [{"name": "pidfile", "type": "str"}],
        "run": {
            "kind": "job",
            "container": {
                "image": "alpine",
                "command": ["sh", "-c", grandchild.SCRIPT, "run"],
                "args": ["{{ pidfile }}", "hang", "{{ pidfile }}.gate"],
            },
        },
    }


async def test_a_timeout_kills_the_whole_group(engine: Engine) -> None:
    pidfile = engine.root / "grandchild.pid"
    op = engine.operation_of(_hanging_component(), [{"pidfile": str(pidfile)}], termination={"timeout": 2})
    running = asyncio.ensure_future(engine.run(op, runtime=engine.runtime(grace=1)))
    left = await Grandchild.of(pidfile)
    try:
        (result,) = (await asyncio.wait_for(running, timeout=60)).results
        assert result.status is RunStatus.FAILED and result.error is not None
        assert result.error.type == "timeout"
        await left.wait_ended()
    finally:
        left.close()
        running.cancel()
