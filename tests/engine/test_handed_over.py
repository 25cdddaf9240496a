"""A run whose attempt cannot be recorded, because its partition belongs to another replica now, never starts
here: the scheduler asks the ledger first, and `HandedOver` means the next owner runs it."""

from __future__ import annotations

from pathlib import Path

from bridge.contract.results import RunStatus
from bridge.engine.scheduler import OperationRunner
from bridge.errors import HandedOver
from bridge.local.file_ledger import FileLedger
from tests.engine_support import Engine


class _LedgerOfAnotherOwner(FileLedger):
    async def attempt_starting(self, operation_id: str, run_id: str, attempt: int) -> None:
        raise HandedOver(f"{run_id} is another replica's now")


async def test_an_attempt_that_cannot_be_recorded_never_starts(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    runtime = engine.runtime()
    runtime.ledger = _LedgerOfAnotherOwner(engine.workdir / "ops")
    outcome = await OperationRunner(engine.plan(engine.operation([{"name": "a"}])), runtime).run()
    (result,) = outcome.results
    assert engine.executions() == []  # its process never started
    assert result.status is RunStatus.STOPPED
    assert result.error is not None and result.error.type == "interrupted"  # not an answer: never published
