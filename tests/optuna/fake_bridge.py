"""A stand-in for a started `BridgeClient`, for the objective's tests that are not about Kafka: each suggestion
is answered by a script (progress values, then a final status and outputs), on an event loop of its own thread as
a real client's is. A run told to `hang` waits for a stop, and ends `stopped` when one comes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import ProgressEvent, RunResult


@dataclass
class Script:
    """What the run of one suggestion does."""

    values: list[float] = field(default_factory=list)
    status: str = "succeeded"
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    hang: bool = False  # after its progress, wait for a stop
    warnings: list[str] = field(default_factory=list)  # what the result warns of (an undeclared param)


class FakeBridge:
    """Answers suggestions by `script(params)`; records what was sent and which runs were asked to stop."""

    def __init__(self, script: Callable[[dict[str, Any]], Script]) -> None:
        self._script = script
        self.sent: list[SuggestionMessage] = []
        self.stops: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._hearers: dict[tuple[str, str], Callable[[ProgressEvent], None]] = {}
        self._results: dict[str, asyncio.Future[RunResult]] = {}
        self._stopped: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        hanging = asyncio.all_tasks(self._loop)  # runs left hanging: never stopped
        for task in hanging:
            task.cancel()

        async def cancelled() -> None:  # each hanging run has ended its cancellation
            await asyncio.gather(*hanging, return_exceptions=True)

        self._loop.run_until_complete(cancelled())
        self._loop.close()

    @contextlib.contextmanager
    def listen_progress(
        self, study: str, suggestion_ids: Iterable[str], hear: Callable[[ProgressEvent], None]
    ) -> Iterator[None]:
        keys = [(study, sid) for sid in suggestion_ids]
        for key in keys:
            self._hearers[key] = hear
        try:
            yield
        finally:
            for key in keys:
                self._hearers.pop(key, None)

    async def send(self, message: SuggestionMessage) -> None:
        self.sent.append(message)
        (suggestion,) = message.suggestions
        sid = str(suggestion.id)
        self._results[sid] = self._loop.create_future()
        self._stopped[sid] = asyncio.Event()
        script = self._script({**message.params, **suggestion.params})
        self._tasks.add(asyncio.create_task(self._run(message, sid, script)))

    async def _run(self, message: SuggestionMessage, sid: str, script: Script) -> None:
        hear = self._hearers.get((message.study, sid))
        for step, value in enumerate(script.values):
            if hear is not None:
                hear(self._progress(message.study, sid, step, value))
            await asyncio.sleep(0)
        status, outputs, error = script.status, script.outputs, script.error
        if script.hang:
            await self._stopped[sid].wait()
            status, outputs, error = "stopped", {}, {"type": "stopped", "message": "stopped by a control message"}
        result = RunResult.model_validate(
            {
                "study": message.study,
                "template": message.template,
                "operation_id": "op",
                "run_id": f"run-{sid}",
                "suggestion_id": sid,
                "index": 0,
                "params": dict(message.suggestions[0].params),
                "status": status,
                "outputs": outputs,
                "error": error,
                "warnings": script.warnings,
            }
        )
        self._results[sid].set_result(result)

    @staticmethod
    def _progress(study: str, sid: str, step: int, value: float) -> ProgressEvent:
        return ProgressEvent.model_validate(
            {
                "study": study,
                "operation_id": "op",
                "run_id": f"run-{sid}",
                "suggestion_id": sid,
                "step": step,
                "metrics": {"loss": value},
                "at": datetime.now(UTC),
            }
        )

    async def next_result(self, study: str, suggestion_ids: Iterable[str], *, timeout: float | None) -> RunResult:
        (sid,) = suggestion_ids
        return await self._results[sid]

    async def stop_run(self, study: str, *, suggestion_id: str, **_: Any) -> tuple[str, int, int]:
        self.stops.append(suggestion_id)
        self._stopped[suggestion_id].set()
        return ("control", 0, len(self.stops))

    def refusal(self, position: tuple[str, int, int]) -> None:
        return None
