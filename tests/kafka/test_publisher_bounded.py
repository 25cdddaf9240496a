"""While the broker is away, a publisher's queue stays bounded: progress events (optional, intermediate) past a
bound are left out and counted; results and ledger records are all kept, and all go out when the broker is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.errors import Retryable
from bridge.kafka import publisher as publisher_module
from bridge.kafka.base import Outgoing
from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import Partition
from tests.polling import eventually
from tests.service.memory_support import memory_publisher, memory_settings


async def test_progress_is_shed_past_its_bound_while_the_broker_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "MAX_SHEDDABLE_QUEUED", 50)
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    commit = broker.commit
    away = [True]
    attempts = [0]

    def maybe_away(*args: Any, **kwargs: Any) -> None:
        attempts[0] += 1
        if away[0]:
            raise Retryable("the broker is away")
        commit(*args, **kwargs)

    monkeypatch.setattr(broker, "commit", maybe_away)
    results = settings.topics.results
    publisher = memory_publisher(broker, Partition(settings.topics.suggestions, 0))
    await publisher.start()
    try:
        first = publisher.publish(Outgoing(results, b"s", b'{"first": 1}'))
        await eventually(lambda: attempts[0] >= 1, timeout=5, interval=0.005)  # the broker refused it: retrying
        for i in range(5000):
            publisher.publish(Outgoing(results, b"s", b'{"progress": %d}' % i, sheddable=True))
        kept = publisher.publish(Outgoing(results, b"s", b'{"result": 1}'))  # never shed
        assert publisher.shed == 5000 - 50
        away[0] = False
        await first
        await kept
    finally:
        await publisher.close()
    values = [r.value for r in broker.records(results)]
    assert values[0] == b'{"first": 1}' and values[-1] == b'{"result": 1}'
    assert len(values) == 2 + 50
