"""`BridgeObjective`: an Optuna objective whose trials run through the bridge, one suggestion each.

    objective = BridgeObjective("quick-start", space=lambda t: {"learning_rate": t.suggest_float(...)},
                                metric="loss", config="bridge.yaml")
    study.optimize(objective, n_trials=100, n_jobs=8)

A trial is one suggestion of the study of the same name, with the id `trial-<number>`: the first trial's number
when Optuna retries a trial a dead process left running (`RetryFailedTrialCallback`, with a storage's
heartbeat), so the bridge answers the retry with the run the first one started (its result, or a replayed copy),
never with a second run. While the run goes, its intermediate values of the (first) metric feed
`trial.report(value, step)`; when the study's pruner says `should_prune()`, the bridge is told to stop the run
and the trial ends PRUNED once the run's `stopped` result came (or `stop_wait_s` passed). The final result
decides the rest (verdict.py): COMPLETE with the metrics' values (a tuple for several metrics, in the study's
directions' order), PRUNED for a run stopped or skipped, FAIL for a failed run or a refused suggestion, with the
reason in the trial's user attribute `bridge_error` (the objective returns NaN, Optuna's way of failing a trial
without stopping the study). A trial's params the template does not declare are refused before anything is
sent, by raising `SuggestionRefused` (a mistake in the search space, which every trial would repeat).
"""

from __future__ import annotations

import math
import queue
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from pydantic import ValidationError

from bridge.client import BridgeClient
from bridge.config.settings import BridgeSettings, load_settings
from bridge.contract.messages import SuggestionMessage
from bridge.contract.results import ProgressEvent, RunResult
from bridge.logs import get_logger
from bridge.optuna.connection import Connection
from bridge.optuna.template_check import SuggestionRefused, TemplateCheck
from bridge.optuna.verdict import Outcome, Verdict, verdict_of

if TYPE_CHECKING:
    import concurrent.futures

log = get_logger(__name__)

Space = Callable[[optuna.Trial], Mapping[str, Any]]
"""Draws one trial's params with `trial.suggest_*`, and returns the params to send (the template's inputs)."""

_BOOTSTRAP = re.compile(r"^[^\s/,:]+:\d+(,[^\s/,:]+:\d+)*$")  # host:port[,host:port...], never a file name
_DONE = None  # on a trial's queue: its result came (or its wait ended)


def suggestion_id_of(trial: optuna.Trial) -> str:
    """`trial-<number>`, of the first trial of a chain of retries (the one that sent the suggestion first)."""
    number = trial.number
    running = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for frozen in running:
        if frozen.number == number:
            history = frozen.system_attrs.get("retry_history") or []
            if history:
                number = int(history[0])
            break
    return f"trial-{number}"


def settings_of(config: str | Path | BridgeSettings | None, bootstrap_servers: str | None) -> BridgeSettings:
    """The bridge's settings: its config file (or settings), else the defaults and `BRIDGE_*` variables; a
    `host:port` given as `config` is the broker's address."""
    if isinstance(config, BridgeSettings):
        if bootstrap_servers is None:
            return config
        kafka = config.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        return config.model_copy(update={"kafka": kafka})
    if isinstance(config, str) and _BOOTSTRAP.match(config) and not Path(config).exists():
        config, bootstrap_servers = None, bootstrap_servers or config
    overrides = {"kafka.bootstrap_servers": bootstrap_servers}
    return load_settings(Path(config) if config is not None else None, overrides)


class BridgeObjective:
    """An objective for `study.optimize` that runs each trial through the bridge (see the module docstring)."""

    def __init__(
        self,
        template: str,
        *,
        space: Space,
        metric: str | Sequence[str] = "loss",
        config: str | Path | BridgeSettings | None = None,
        bootstrap_servers: str | None = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        connect_timeout_s: float = 30.0,
        stop_wait_s: float = 30.0,
        control_token: str | None = None,
        client: BridgeClient | None = None,
    ) -> None:
        """`template` names the bridge's registered template; `space(trial)` returns a trial's params; `metric`
        names the output (or outputs, one per objective) the trial's value is taken from.

        `config` is the bridge's config file (its broker, topics and templates: params are then checked against
        the template before sending) or a `host:port` of the broker; `bootstrap_servers` overrides its broker.
        `params` go with every trial (fixed inputs), `metadata` is echoed in every result. `timeout_s` bounds a
        trial (None: no bound); past it the run is asked to stop and the trial FAILs. `connect_timeout_s` bounds
        reaching the broker and the bridge's topics. `stop_wait_s` is how long a pruned trial waits for its run's
        `stopped` result. `control_token` is the bridge's `control.token` (default: the config's). `client`: a started
        `BridgeClient` to share with other callers (its own loop running in another thread), instead of one
        this objective starts on first use."""
        self.template = template
        self.metrics: tuple[str, ...] = (metric,) if isinstance(metric, str) else tuple(metric)
        if not self.metrics:
            raise ValueError("metric: name at least one output")
        self._space = space
        self._settings = settings_of(config, bootstrap_servers)
        self._check = TemplateCheck(self._settings, template) if self._settings.templates else None
        self._params = dict(params or {})
        self._metadata = {"optimizer": "optuna", **dict(metadata or {})}
        self._timeout_s = timeout_s
        self._stop_wait_s = stop_wait_s
        token = self._settings.control.token
        self._token = control_token if control_token is not None else token.get_secret_value() if token else None
        self._connection = Connection(self._settings, connect_timeout_s=connect_timeout_s, client=client)

    def __enter__(self) -> BridgeObjective:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect from the broker (the objective connects again when called again)."""
        self._connection.close()

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        """Run one trial through the bridge: its value(s), or NaN for a failed run; raises `TrialPruned`."""
        directions = trial.study.directions
        if len(directions) != len(self.metrics):
            raise ValueError(
                f"the study has {len(directions)} objective(s) and metric= names {len(self.metrics)} "
                f"({', '.join(self.metrics)}): give one metric per direction"
            )
        sid = suggestion_id_of(trial)
        trial.set_user_attr("bridge_suggestion_id", sid)
        message = self._message(trial, sid)
        client = self._connection.client()
        verdict = _TrialRun(self, trial, client, message, sid).run()
        for key, value in verdict.attrs.items():
            trial.set_user_attr(key, value)
        for warning in verdict.attrs.get("bridge_warnings", ()):
            log.warning("trial_warning", study=message.study, trial=trial.number, suggestion_id=sid, warning=warning)
        if verdict.outcome == Outcome.PRUNED:
            raise optuna.TrialPruned(verdict.reason)
        if verdict.outcome == Outcome.FAIL:
            log.warning("trial_failed", study=message.study, trial=trial.number, suggestion_id=sid, why=verdict.reason)
            values: tuple[float, ...] = (math.nan,) * len(self.metrics)
        else:
            values = verdict.values
        return values[0] if len(values) == 1 else values

    def _message(self, trial: optuna.Trial, sid: str) -> SuggestionMessage:
        """The trial's suggestion, checked against the template when the config is known."""
        try:
            params = dict(self._space(trial))
            message = SuggestionMessage.model_validate(
                {
                    "study": trial.study.study_name,
                    "template": self.template,
                    "iteration": trial.number,
                    "params": self._params,
                    "suggestions": [{"id": sid, "params": params}],
                    "metadata": {**self._metadata, "trial": trial.number},
                }
            )
            if self._check is not None:
                self._check.check(message)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"]))
            refused = SuggestionRefused(f"{where}: {first['msg']}", where)
            trial.set_user_attr("bridge_error", str(refused))
            raise refused from None
        except SuggestionRefused as exc:
            trial.set_user_attr("bridge_error", str(exc))
            raise
        return message


class _TrialRun:
    """One trial's wait, in the trial's thread: its run's progress into the pruner, then its final result."""

    def __init__(
        self,
        objective: BridgeObjective,
        trial: optuna.Trial,
        client: BridgeClient,
        message: SuggestionMessage,
        sid: str,
    ) -> None:
        self._objective = objective
        self._trial = trial
        self._client = client
        self._message = message
        self._sid = sid
        self._events: queue.SimpleQueue[ProgressEvent | None] = queue.SimpleQueue()
        self._last_step = -1
        self._prunes = len(trial.study.directions) == 1  # Optuna prunes single-objective studies only

    def run(self) -> Verdict:
        """Send the suggestion, follow its run, and judge its result."""
        objective = self._objective
        future = objective._connection.submit(self._send_and_wait())
        future.add_done_callback(lambda _: self._events.put(_DONE))
        deadline = None if objective._timeout_s is None else time.monotonic() + objective._timeout_s
        try:
            while (event := self._next(deadline)) is not _DONE:
                step = self._report(event)
                if step is not None and self._trial.should_prune():
                    return self._prune(future, step)
            return verdict_of(future.result(), objective.metrics)
        except TimeoutError:
            future.cancel()
            self._stop(f"no result within the trial's timeout_s ({objective._timeout_s:g} s)")
            reason = f"no result within timeout_s={objective._timeout_s:g} s; the run was asked to stop"
            return Verdict(Outcome.FAIL, reason=reason, attrs={"bridge_error": reason})
        except BaseException:
            future.cancel()  # interrupted: the run goes on, and a retry of this trial gets its answer
            raise

    async def _send_and_wait(self) -> RunResult:
        """On the client's loop: listen to the run's progress, send the suggestion, take its final result."""
        study = self._message.study
        with self._client.listen_progress(study, [self._sid], self._events.put):
            await self._client.send(self._message)
            return await self._client.next_result(study, [self._sid], timeout=None)

    def _next(self, deadline: float | None) -> ProgressEvent | None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None

    def _report(self, event: ProgressEvent | None) -> int | None:
        """Report the event's value of the first metric to Optuna; the step reported, if any. A step reported
        already (a run's attempt after a retry starts again) is not reported twice."""
        value = None if event is None else event.metrics.get(self._objective.metrics[0])
        if not self._prunes or event is None or value is None:
            return None
        step = event.step if event.step is not None else self._last_step + 1
        if step <= self._last_step:
            return None
        self._trial.report(value, step)
        self._last_step = step
        return step

    def _prune(self, future: concurrent.futures.Future[RunResult], step: int) -> Verdict:
        """The pruner said so: stop the run, and wait up to `stop_wait_s` for its final (`stopped`) result."""
        position = self._stop(f"pruned by Optuna at step {step}")
        deadline = time.monotonic() + self._objective._stop_wait_s
        try:
            while self._next(deadline) is not _DONE:
                pass  # the run's last progress events, sent before it stopped
        except TimeoutError:
            future.cancel()
            why = f"its run's stop was not confirmed within stop_wait_s={self._objective._stop_wait_s:g} s"
            if position is not None:
                refusal = self._objective._connection.run(self._refusal(position), timeout=10)
                why = f"the bridge refused its stop: {refusal}" if refusal else why
            return Verdict(Outcome.PRUNED, reason=f"pruned at step {step}; {why}", attrs={"bridge_error": why})
        done = verdict_of(future.result(), self._objective.metrics)
        status = done.attrs.get("bridge_status")
        return Verdict(Outcome.PRUNED, reason=f"pruned at step {step}; its run ended {status}", attrs=done.attrs)

    def _stop(self, reason: str) -> tuple[str, int, int] | None:
        """Ask the bridge to stop the trial's run; where the stop went, or None when it could not be sent."""
        stop = self._client.stop_run(
            self._message.study, suggestion_id=self._sid, reason=reason, token=self._objective._token
        )
        try:
            return self._objective._connection.run(stop, timeout=30)
        except Exception as exc:  # the trial ends either way; a run left going still gets its one result
            log.warning("stop_not_sent", suggestion_id=self._sid, error=repr(exc))
            return None

    async def _refusal(self, position: tuple[str, int, int]) -> str | None:
        letter = self._client.refusal(position)
        return None if letter is None else f"{letter.error.type}: {letter.error.message}"
