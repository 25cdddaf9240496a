"""Each partition's publisher commits its own partition's offsets, whichever publisher runs first: a record that
caused no new work (a resend, a stop) on one partition is committed even when another partition's transaction
runs before, and nothing more comes to its own."""

from __future__ import annotations

from pathlib import Path

from bridge.kafka.memory import MemoryBroker
from bridge.kafka.offsets import OffsetTracker, Partition
from tests.service.memory_support import memory_publisher, memory_settings


async def test_a_partition_with_no_new_work_still_commits_its_offset(tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)
    broker = MemoryBroker(settings)
    tracker = OffsetTracker()
    topic = settings.topics.suggestions
    parts = [Partition(topic, 0), Partition(topic, 1)]
    publishers = [memory_publisher(broker, part, tracker) for part in parts]
    for publisher in publishers:
        await publisher.start()
    try:
        tracker.add(parts[0], 0, 0)  # a record of each partition with nothing to wait for
        tracker.add(parts[1], 0, 0)
        await publishers[0].complete()  # partition 0's transaction runs first
        await publishers[1].complete()
        assert [broker.committed_offset(topic, p.partition) for p in parts] == [1, 1]
    finally:
        for publisher in publishers:
            await publisher.close()
