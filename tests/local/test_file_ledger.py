"""`bridge run`'s file ledger: every event is in the file when the scheduler goes on, and `close()` returns once
the batched fsyncs are done, whenever the last of them ended."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bridge.local.file_ledger import FileLedger


async def test_each_event_is_in_the_file_before_the_scheduler_goes_on(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    await ledger.attempt_starting("op", "r1", 1)
    await ledger.attempt_started("op", "r2", 1, "node-a", {"pid": 7})
    # Read back while fsyncs may still be under way: what a kill -9 now would leave.
    lines = [json.loads(line) for line in ledger.path("op").read_text().splitlines()]
    assert [(x["event"], x["run_id"], x.get("info")) for x in lines] == [
        ("starting", "r1", None),
        ("started", "r2", {"pid": 7}),
    ]
    await ledger.close()
    assert set(await FileLedger(tmp_path).load("op")) == {"r1", "r2"}


async def test_close_returns_when_the_last_fsync_ended_just_before_it_was_called(tmp_path: Path) -> None:
    # The fsyncs run on the loop's default executor: one of this test's own, so it can wait for its thread.
    fsyncs = ThreadPoolExecutor(max_workers=1)
    asyncio.get_running_loop().set_default_executor(fsyncs)
    ledger = FileLedger(tmp_path)
    await ledger.attempt_starting("op", "r1", 1)
    # The fsync thread ends while the loop is blocked, here until that thread is gone (its result is then posted
    # to the loop); its end reaches the loop first, then this task resumes, before the callbacks that its end
    # schedules have run. (A close() that waited for those callbacks to run without giving the loop a turn spun
    # forever here.)
    fsyncs.shutdown(wait=True)
    await asyncio.sleep(0)
    # Awaited in this task, not wrapped in another one (which would let those callbacks run first); a spin would
    # hold the loop, so pytest-timeout is what would end this test.
    await ledger.close()
    assert ledger.path("op").exists()


async def test_discard_then_new_events_and_events_after_close_land_in_the_file(tmp_path: Path) -> None:
    # The ledger is kept open between events: `--fresh` (discard) and a close must not leave events written into
    # a file that is gone or closed.
    ledger = FileLedger(tmp_path)
    await ledger.attempt_starting("op", "old", 1)
    assert ledger.discard("op")
    await ledger.attempt_starting("op", "r1", 1)
    await ledger.close()
    await ledger.attempt_starting("op", "r2", 1)
    await ledger.close()
    events = [json.loads(line)["run_id"] for line in ledger.path("op").read_text().splitlines()]
    assert events == ["r1", "r2"]
