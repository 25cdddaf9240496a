"""What a client asks the broker's admin API: a topic's partitions (a consumer's metadata covers only what it
reads), and the offset a consumer group committed. Raises the bridge's errors, never aiokafka's."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bridge.config.sections import KafkaSettings
from bridge.kafka.connection import client_kwargs
from bridge.kafka.errors import as_bridge_errors, topic_authorized
from bridge.kafka.offsets import Partition


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker describes it: whether this principal may see it, whether it exists, its partitions,
    and those of them that have a leader now."""

    topic: str
    authorized: bool
    exists: bool
    partitions: frozenset[int]
    led: frozenset[int]


class Lookups:
    """An admin connection, open within `async with`."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._admin = AIOKafkaAdminClient(**client_kwargs(kafka))

    async def __aenter__(self) -> Lookups:
        try:
            with as_bridge_errors("connect to the admin API"):
                await self._admin.start()
        except BaseException:
            await self._admin.close()  # what a start that failed opened
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._admin.close()

    async def topics(self, *names: str) -> list[TopicState]:
        """How the broker describes each topic of `names`, in their order."""
        with as_bridge_errors(f"describe topics {', '.join(names)}"):
            described = await self._admin.describe_topics(list(names))
        by_name = {d["topic"]: d for d in described}
        out = []
        for name in names:
            d = by_name.get(name, {"error_code": -1, "partitions": []})
            code = d["error_code"]
            every = frozenset(p["partition"] for p in d["partitions"])
            led = frozenset(p["partition"] for p in d["partitions"] if p["leader"] >= 0)
            out.append(TopicState(name, topic_authorized(code), code == 0, every, led))
        return out

    async def partitions(self, *names: str) -> list[Partition]:
        """The partitions of those topics of `names` that exist, in order."""
        return [Partition(t.topic, p) for t in await self.topics(*names) if t.exists for p in sorted(t.partitions)]

    async def committed(self, group: str, partition: Partition) -> int | None:
        """The offset `group` committed for `partition` (the next it reads), None when it has none. Raises
        `BrokerRefused` when this principal may not see the group, `Retryable` while it is rebalancing."""
        tp = TopicPartition(partition.topic, partition.partition)
        with as_bridge_errors(f"look up the offsets of group {group}"):
            committed = await self._admin.list_consumer_group_offsets(group, partitions=[tp])
        at = committed.get(tp)
        return None if at is None or at.offset < 0 else int(at.offset)
