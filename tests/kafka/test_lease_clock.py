"""The lease (`bridge/service/ledger/lease.py`) counts from when a transaction began, never from when its commit's
reply was read: a replica whose loop stalled between the two must not believe it committed just now."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.kafka import publisher as publisher_module
from bridge.kafka.base import Outgoing
from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import Partition
from tests.service.memory_support import memory_publisher, memory_settings


async def test_a_stall_after_the_commit_leaves_no_fresh_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    now = [1000.0]
    monkeypatch.setattr(publisher_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    commit = broker.commit

    def stalled_commit(*args: Any, **kwargs: Any) -> None:
        commit(*args, **kwargs)
        now[0] += 10.0  # the reply comes, and the loop is frozen for 10 s before it reads it

    monkeypatch.setattr(broker, "commit", stalled_commit)
    source = Partition(settings.topics.suggestions, 0)
    publisher = memory_publisher(broker, source)
    await publisher.start()
    try:
        await publisher.publish(Outgoing(settings.topics.results, b"s", b"{}"))
        assert not publisher.committed_within(3.0)  # began 10 s ago, as far as this replica can know
        assert publisher.committed_within(11.0)
    finally:
        await publisher.close()
