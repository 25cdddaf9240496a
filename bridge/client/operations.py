"""The operations the bridge builds, as it announces them on the operations topic (`bridge.operation/v1`).

`BridgeClient.watch_operations` reads that topic from where it ends when the watch starts, so a watch started
before a message is sent sees every `created` event the bridge publishes for it, and none older. `created`
waits for the first of one study and template: its `operation` is the full Polyaxon operation the bridge built
from the template (the component's inputs included), which is how `bridge submit` without the bridge's config
learns what the template declares. Records not readable (a newer bridge's schema version) are skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque

import structlog

from bridge.contract.decoders import Unreadable, read_operation
from bridge.contract.messages import OperationCreated
from bridge.kafka.reader import Record, TopicReader

log = structlog.get_logger(__name__)


class OperationWatch:
    """The operations topic read from where it ended when the watch started (`BridgeClient.watch_operations`)."""

    def __init__(self, reader: TopicReader) -> None:
        self._reader = reader
        self._unread: deque[Record] = deque()  # read, not looked at yet (those after a match): the next call's

    async def created(self, study: str, template: str, *, timeout: float) -> OperationCreated | None:
        """The first `created` event of `study` and `template` read since the watch started (each is returned
        once), waiting up to `timeout` seconds; None when none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._unread:
                event = self._created(self._unread.popleft())
                if event is not None and (event.study, event.template) == (study, template):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._unread.extend(await self._reader.read(min(remaining, 1.0)))

    @staticmethod
    def _created(record: Record) -> OperationCreated | None:
        """The `created` event a record holds; None for another event, or a record not readable (skipped)."""
        read = read_operation(record.value)
        if isinstance(read, Unreadable):
            log.debug("operation_event_unreadable", partition=record.partition, offset=record.offset, why=str(read))
            return None
        return read.message if isinstance(read.message, OperationCreated) else None
