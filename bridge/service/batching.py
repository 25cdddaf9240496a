"""Suggestions of one study and template that arrive within `linger_ms`, up to `max_configs`, become one mapping
operation. The batcher only groups; what a batch becomes is the callback's business."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass
class _Open(Generic[T]):
    items: list[T] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher(Generic[K, T]):
    """Groups items by key; a group is emitted when it reaches `max_items` or `linger_s` after its first item."""

    def __init__(self, linger_s: float, max_items: int, emit: Callable[[K, list[T]], None]) -> None:
        self._linger_s = linger_s
        self._max = max_items
        self._emit = emit
        self._open: dict[K, _Open[T]] = {}

    def add(self, key: K, items: Sequence[T]) -> None:
        """Add items (one message's worth); full batches are emitted at once, the rest lingers."""
        for item in items:
            group = self._open.get(key)
            if group is None:
                group = self._open[key] = _Open()
                if self._linger_s > 0:
                    group.timer = asyncio.get_running_loop().call_later(self._linger_s, self.flush, key)
            group.items.append(item)
            if len(group.items) >= self._max:
                self.flush(key)
        if self._linger_s <= 0:
            self.flush(key)

    def flush(self, key: K) -> None:
        """Emit the open batch of `key`, if any."""
        group = self._open.pop(key, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        if group.items:
            self._emit(key, group.items)

    def discard(self, keep: Callable[[K], bool]) -> list[T]:
        """Drop the open batches whose key `keep` refuses, without emitting them; returns their items."""
        dropped: list[T] = []
        for key in [k for k in self._open if not keep(k)]:
            group = self._open.pop(key)
            if group.timer is not None:
                group.timer.cancel()
            dropped += group.items
        return dropped

    def remove(self, match: Callable[[T], bool]) -> list[T]:
        """Take the items `match` picks out of the open batches (they will not be emitted)."""
        taken: list[T] = []
        for key in list(self._open):
            group = self._open[key]
            taken += [i for i in group.items if match(i)]
            group.items = [i for i in group.items if not match(i)]
            if not group.items:
                self.flush(key)  # empty: only its timer goes
        return taken

    def flush_all(self) -> None:
        """Emit every open batch now (on shutdown)."""
        for key in list(self._open):
            self.flush(key)

    @property
    def waiting(self) -> int:
        """Items in open batches."""
        return sum(len(g.items) for g in self._open.values())
