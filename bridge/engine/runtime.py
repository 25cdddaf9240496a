"""What every operation of one bridge process shares, `bridge run` and `bridge serve` alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge.contract.results import RunResult
from bridge.engine.cache import FileCache
from bridge.engine.ports import RunLedger
from bridge.executors.base import Executor


@dataclass
class Runtime:
    """What every operation of one bridge process shares: the executor and its global cap, the ledger, the
    cache and the runs in flight (so identical params run once)."""

    executor: Executor
    ledger: RunLedger
    cache: FileCache | None = None
    stop_grace_s: float = 10.0
    slots: asyncio.Semaphore = field(init=False)
    inflight: dict[str, asyncio.Future[RunResult]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.executor.max_parallel)
