"""One study's asynchronous loop over the bridge: ask a trial whenever one ends, so N stay in flight.

    async with Study(settings, study="cnn-tpe", template="cnn") as study:
        for _ in range(4):
            await study.ask({"learning_rate": 0.01})
        async for result in study.results():
            ...  # tell the optimizer; then, while trials remain, ask the next one:
            await study.ask(next_params)

`results()` yields each asked suggestion's one final result as it arrives and ends when none is in flight, so
asking inside the loop keeps it going. Each `ask` publishes one suggestion message at once (no waiting for a
batch); with `batching.linger_ms: 0` on the bridge, it starts as soon as a slot is free. Built on
`BridgeClient`: its own, reading the results topic from its end when the study opens, or one shared with other
studies and callers (`client=`, started and stopped by its owner), whose results it takes from the same inbox.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bridge.client.client import BridgeClient
from bridge.config.settings import BridgeSettings
from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import RunResult


class Study:
    """Asks suggestions of one study and template one at a time, and hands back their results as they come."""

    def __init__(
        self,
        settings: BridgeSettings | None = None,
        *,
        study: str,
        template: str,
        bootstrap_servers: str | None = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        connect_timeout_s: float = 30.0,
        client: BridgeClient | None = None,
    ) -> None:
        """`settings` gives the broker and topic names (the bridge's own config; default: the defaults);
        `params` are fixed params sent with every suggestion, `metadata` is echoed in every result; `client`, a
        started client to share (then `settings`, `bootstrap_servers` and `connect_timeout_s` are its own)."""
        s = settings or BridgeSettings()
        self.study = study
        self.template = template
        self._params = dict(params or {})
        self._metadata = dict(metadata or {})
        self._owns_client = client is None
        self._client = client or BridgeClient(
            bootstrap_servers, kafka=s.kafka, topics=s.topics, connect_timeout_s=connect_timeout_s
        )
        self._asked = itertools.count(1)  # the message's iteration: a fresh id per ask unless one is given
        self._pending: set[str] = set()

    async def __aenter__(self) -> Study:
        if self._owns_client:
            await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_client:
            await self._client.__aexit__(*exc)

    @property
    def in_flight(self) -> int:
        """Suggestions asked whose result has not been handed out yet."""
        return len(self._pending)

    async def ask(self, params: Mapping[str, Any], *, suggestion_id: str | None = None) -> str:
        """Publish one suggestion now; returns its id (the one given, or the one the bridge derives)."""
        suggestion: dict[str, Any] = {"params": dict(params)}
        if suggestion_id is not None:
            suggestion["id"] = suggestion_id
        message = SuggestionMessage.model_validate(
            {
                "study": self.study,
                "template": self.template,
                "iteration": next(self._asked),
                "params": self._params,
                "suggestions": [suggestion],
                "metadata": self._metadata,
            }
        )
        (sid,) = message.suggestion_ids()
        self._pending.add(sid)  # before it is sent: its result cannot come before it is awaited
        try:
            await self._client.send(message)
        except BaseException:
            self._pending.discard(sid)
            raise
        return sid

    async def next_result(self, *, timeout: float | None = None) -> RunResult:
        """The next result of a suggestion asked here; raises `ResultsTimeout` after `timeout` seconds."""
        if not self._pending:
            raise LookupError("no suggestion in flight: ask() first")
        # A second copy of one handed out already (a replay of a resent suggestion) is not this loop's.
        result = await self._client.next_result(self.study, self._pending, timeout=timeout)
        self._pending.discard(str(result.suggestion_id))
        return result

    async def results(self, *, timeout: float | None = None) -> AsyncIterator[RunResult]:
        """Each asked suggestion's result as it arrives, until none is in flight; `timeout` bounds the wait for
        each one (`ResultsTimeout` names those still missing)."""
        while self._pending:
            yield await self.next_result(timeout=timeout)
