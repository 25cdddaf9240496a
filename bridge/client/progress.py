"""Who hears the intermediate metrics (`bridge.progress/v1`) a client reads, while they listen.

Progress events are not answers: nobody waits for one, so none is kept. A caller that wants a run's metrics as
they come (an Optuna trial feeding its pruner) listens by study and suggestion id before it sends the
suggestion, and hears each event read from then on until it stops listening; events nobody listens for are
passed over. Each callback runs on the client's event loop, so it must not block (put into a queue, set a flag).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import structlog

from bridge.contract.results import ProgressEvent

log = structlog.get_logger(__name__)

Hearer = Callable[[ProgressEvent], None]


class ProgressListeners:
    """The callbacks listening for progress, by (study, suggestion id)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], list[Hearer]] = {}

    @contextlib.contextmanager
    def listen(self, study: str, suggestion_ids: Iterable[str], hear: Hearer) -> Iterator[None]:
        """`hear` gets every progress event of `suggestion_ids` in `study` read until the block ends."""
        keys = [(study, sid) for sid in dict.fromkeys(suggestion_ids)]
        for key in keys:
            self._by_key.setdefault(key, []).append(hear)
        try:
            yield
        finally:
            for key in keys:
                hearers = self._by_key.get(key, [])
                with contextlib.suppress(ValueError):
                    hearers.remove(hear)
                if not hearers:
                    self._by_key.pop(key, None)

    def put(self, event: ProgressEvent) -> None:
        """Hand one event read to those listening for it."""
        for hear in list(self._by_key.get((event.study or "", event.suggestion_id or ""), ())):
            try:
                hear(event)
            except Exception as exc:  # one listener's bug must not stop the client's reader
                log.warning("progress_listener_failed", suggestion_id=event.suggestion_id, error=repr(exc))
