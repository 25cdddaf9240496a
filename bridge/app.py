"""The composition root: the one place that turns settings into concrete parts and wires them together.

`bridge run` (bridge/local/run.py) and `bridge serve` (bridge/cli/serve.py) both get their executor here, and `serve`
its whole service; everything else receives its parts, so a new executor kind, broker client or sink is chosen
here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import logs
from bridge.config.sections import ExecutorSettings
from bridge.errors import ConfigError
from bridge.executors.base import Executor

if TYPE_CHECKING:  # the Kafka side and its settings (pydantic-settings) are imported only by the command that serves
    from bridge.config.settings import BridgeSettings
    from bridge.kafka.base import Broker
    from bridge.service.service import BridgeService


RAY_EXTRA = "pip install 'suggestion-bridge[ray]'"


def build_executor(
    settings: ExecutorSettings,
    *,
    workdir: Path,
    max_parallel: int | None = None,
    env_passthrough: Sequence[str] | None = None,
) -> Executor:
    """The executor `executor.kind` names, keeping what it must under `workdir` (the local executor its runs, Ray
    the logs it streams back); `max_parallel` and `env_passthrough` override the settings' own."""
    passthrough = settings.env_passthrough if env_passthrough is None else env_passthrough
    parallel = max_parallel or settings.max_parallel
    if settings.kind == "local":
        from bridge.executors.local import LocalExecutor

        return LocalExecutor(max_parallel=parallel, workdir=workdir, env_passthrough=passthrough)
    if settings.kind == "ray":
        try:
            from bridge.executors.ray import RayExecutor
        except ImportError as exc:
            # Accepting `ray` and running local processes instead would be a silent lie about where runs execute.
            raise ConfigError(f"executor.kind: ray needs Ray, which is not installed ({exc}): {RAY_EXTRA}") from None
        # It logs through structlog directly, imported just now: configured before it can log (`bridge run`
        # configures logging lazily, see bridge.logs).
        logs.settle()
        address = settings.address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise ConfigError(
                "executor.kind: ray needs executor.address (host:port or ray://host:10001) or RAY_ADDRESS"
            )
        return RayExecutor(address, max_parallel=parallel, workdir=workdir, env_passthrough=passthrough)
    raise ConfigError(f"executor.kind: `{settings.kind}` is not an executor of this bridge; use `local` or `ray`")


def build_service(
    settings: BridgeSettings,
    *,
    connect_timeout_s: float = 30.0,
    broker: Broker | None = None,
    executor: Executor | None = None,
    exactly_once: bool = True,
) -> BridgeService:
    """`bridge serve`'s service: on the Kafka brokers and with the executor its settings name, unless given others
    (`bridge.kafka.memory.MemoryBroker` and a fake executor run it in one process, for the fast tests).

    `exactly_once=False` is for benchmarks/serve_throughput.py alone: the same path without ledger records,
    transactions or committed offsets, to measure what the guarantees cost. It is no setting on purpose: no
    configuration file or environment variable can reach it."""
    from bridge.service.service import BridgeService

    if broker is None:
        from bridge.kafka.broker import KafkaBroker

        broker = KafkaBroker(settings, connect_timeout_s=connect_timeout_s, exactly_once=exactly_once)
    return BridgeService(
        settings,
        executor=executor or build_executor(settings.executor, workdir=settings.workdir),
        broker=broker,
        exactly_once=exactly_once,
    )
