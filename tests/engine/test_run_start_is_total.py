"""Starting a run is total: a param that exec cannot take (a NUL byte, a lone surrogate) fails that run with
`start_failed` and the reason, and an unexpected error while following a run fails it with `internal_error`;
either way the run gets its one result and the operation's other runs go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.contract.results import ProgressEvent, RunResult, RunStatus
from bridge.engine.scheduler import OperationRunner
from tests.engine_support import Engine


async def test_a_nul_byte_or_a_lone_surrogate_fails_only_its_own_run(engine: Engine) -> None:
    op = engine.operation([{"name": "a\x00b"}, {"name": "fine-1"}, {"name": "x\ud800y"}, {"name": "fine-2"}])
    outcome = await asyncio.wait_for(engine.run(op), timeout=60)
    nul, fine_1, surrogate, fine_2 = outcome.results
    assert (fine_1.status, fine_2.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert nul.status is RunStatus.FAILED and nul.error is not None
    assert nul.error.type == "start_failed"
    assert nul.error.message.endswith("argument 2 contains a NUL byte")  # argv[2] is --name=...
    assert surrogate.status is RunStatus.FAILED and surrogate.error is not None
    assert surrogate.error.type == "start_failed"
    assert surrogate.error.message.endswith("argument 2 contains a lone surrogate \\ud800 at position 8")
    assert surrogate.error.message.encode("utf-8")  # the message itself can be sent as UTF-8 JSON
    assert sorted(e.name for e in engine.executions()) == ["fine-1", "fine-2"]


def _exists(pid: int) -> bool:
    return Path("/proc", str(pid)).exists()


class _FailsOnStart:
    """A listener that breaks when one run starts: an error nothing in the scheduler expects."""

    def __init__(self, index: int) -> None:
        self._index = index

    async def run_started(self, run_id: str, index: int, attempt: int) -> None:
        if index == self._index:
            raise RuntimeError("listener broke")

    async def run_progress(self, event: ProgressEvent) -> None:
        return None

    async def run_finished(self, result: RunResult) -> None:
        return None


async def test_an_unexpected_error_fails_its_run_as_internal_error_and_stops_its_process(engine: Engine) -> None:
    gate = engine.root / "never-opened"
    op = engine.operation([{"name": "doomed", "wait_for": str(gate)}, {"name": "fine"}])
    runner = OperationRunner(engine.plan(op), engine.runtime(), _FailsOnStart(index=0))
    doomed, fine = (await asyncio.wait_for(runner.run(), timeout=60)).results
    assert fine.status is RunStatus.SUCCEEDED
    assert doomed.status is RunStatus.FAILED and doomed.error is not None
    assert (doomed.error.type, doomed.error.message) == ("internal_error", "RuntimeError: listener broke")
    # Its process waits for a gate nobody opens: it is gone only because it was stopped with its run.
    (record,) = engine.record.glob("doomed.1.*.json")
    assert not _exists(int(record.name.split(".")[2]))
