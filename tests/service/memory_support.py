"""The real `BridgeService` on the in-memory broker with an executor that finishes at once: no broker, no process.

What a run "does" is decided by the fake executor: it ends at once with `loss` as its output, or waits until the
test lets it go (`hold`), so a test can see runs in flight, backpressure and shutdown at its own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from bridge.app import build_service
from bridge.config.settings import BridgeSettings
from bridge.executors.base import EventCallback, RunCommand, RunExit, RunPlace, RunSpec
from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import OffsetTracker, Partition
from bridge.service.service import BridgeService
from tests.polling import eventually
from tests.service.service_support import service_settings, suggestion

RESULT = "bridge.result/v1"
LEDGER = (
    "bridge.ledger/v1"  # the runs' records; the ledger also holds `~owner` markers (bridge/service/ledger/lease.py)
)


def memory_settings(root: Path, **overrides: Any) -> BridgeSettings:
    """The service tests' settings (template `job`), for a broker that lives in the process."""
    return service_settings("memory:0", root, **{"shutdown_grace_s": 5, **overrides})


PLACE = RunPlace(node_id="fake-node", artifacts_path="/nowhere", outputs_path="/nowhere/outputs")


def name_of(command: RunCommand) -> str:
    """The `name` param the test job was rendered with."""
    return next(a.split("=", 1)[1] for a in command.argv if a.startswith("--name="))


class _Handle:
    def __init__(self, executor: FakeExecutor, spec: RunSpec) -> None:
        self._executor = executor
        self._spec = spec
        self._done = asyncio.Event()
        self._stopped = False
        if not executor.hold:
            self._done.set()

    @property
    def run_id(self) -> str:
        return self._spec.run_id

    @property
    def node_id(self) -> str:
        return PLACE.node_id

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        return {"fake": True}

    def release(self) -> None:
        self._done.set()

    async def wait(self) -> RunExit:
        try:
            await self._done.wait()
        finally:
            self._executor.running.discard(self)
        if self._stopped:
            return RunExit(exit_code=-15, outputs={}, logged_outputs=False)
        return RunExit(exit_code=0, outputs={"loss": 0.5}, logged_outputs=True)

    async def stop(self, grace_s: float) -> None:
        self._stopped = True
        self._done.set()


class FakeExecutor:
    """An `Executor` whose runs start and end without a process; `hold` keeps them running until `release()`."""

    def __init__(self, *, hold: bool = False, max_parallel: int = 64) -> None:
        self.hold = hold
        self._max_parallel = max_parallel
        self.started: list[RunCommand] = []
        self.running: set[_Handle] = set()
        self.reaped: list[str] = []

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    @property
    def names(self) -> list[str]:
        """The `name` of every run started, in order, one per attempt."""
        return [name_of(r) for r in self.started]

    async def start(self, spec: RunSpec, on_event: EventCallback) -> _Handle:
        handle = _Handle(self, spec)
        self.started.append(spec.render(PLACE))
        if not handle._done.is_set():
            self.running.add(handle)
        return handle

    def release(self) -> None:
        """Let every run in flight end well, and every later one end at once."""
        self.hold = False
        for handle in list(self.running):
            handle.release()

    async def reattach(self, run_id: str, info: Mapping[str, Any], on_event: EventCallback) -> None:
        self.reaped.append(run_id)  # a fake run never outlives its bridge: nothing to follow, nothing to stop

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def one_held_run(
    tmp_path: Path,
) -> AsyncIterator[tuple[BridgeSettings, MemoryBroker, FakeExecutor, BridgeService]]:
    """The service on an in-memory broker (linger 0) with one run, suggestion `a1` of study `s`, started and held
    running until `executor.release()`: (settings, broker, executor, service)."""
    settings = memory_settings(tmp_path, batching={"linger_ms": 0})
    broker, executor = MemoryBroker(settings), FakeExecutor(hold=True)
    async with serving(settings, broker, executor) as service:
        broker.send(settings.topics.suggestions, suggestion("s", [{"name": "a"}], ids=["a1"]), key=b"s")
        await eventually(lambda: len(executor.running) == 1, timeout=5, interval=0.005)
        yield settings, broker, executor, service


@contextlib.asynccontextmanager
async def serving(
    settings: BridgeSettings, broker: MemoryBroker, executor: FakeExecutor
) -> AsyncIterator[BridgeService]:
    """The service on `broker`, ready (its partitions assigned and reconciled), until the block ends, drained."""
    service = build_service(settings, broker=broker, executor=executor)
    task = asyncio.create_task(service.run())

    def ready() -> bool:
        if task.done():
            task.result()  # a crash at start fails the test with its own error
        return service.health.ready()[0]

    await eventually(ready, timeout=5, interval=0.005)
    try:
        yield service
    finally:
        service.stop()
        await asyncio.wait_for(task, timeout=10)


def messages(broker: MemoryBroker, topic: str, schema: str | None = None) -> list[dict[str, Any]]:
    """The JSON messages of a topic (tombstones left out), of one schema when given."""
    out = [json.loads(r.value) for r in broker.records(topic) if r.value is not None]
    return [m for m in out if schema is None or m.get("schema") == schema]


async def until(broker: MemoryBroker, topic: str, count: int, schema: str | None = None) -> list[dict[str, Any]]:
    """The topic's messages once there are at least `count` of them."""
    await eventually(lambda: len(messages(broker, topic, schema)) >= count, timeout=5, interval=0.005)
    return messages(broker, topic, schema)


def committed(broker: MemoryBroker, topic: str) -> int:
    """The group's committed offsets of `topic`, summed over its partitions (records whose work is durable)."""
    return sum(broker.committed_offset(topic, p) or 0 for p in range(broker.partitions(topic)))


def memory_publisher(broker: MemoryBroker, part: Partition, tracker: OffsetTracker | None = None) -> Any:
    """The broker's (not started) transactional publisher of `part`, as the service makes it, for tests of the
    publisher alone: owning `part`, nothing listening to its commits, fences or trouble."""
    return broker.publisher(
        part,
        tracker or OffsetTracker(),
        on_commit=lambda n, s: None,
        on_fenced=lambda p: None,
        owns=lambda p: True,
        on_trouble=lambda p, why: None,
    )
