"""The Ray executor: each attempt is a named, detached Ray actor that runs the run's process on the node Ray picks.

The only module that imports ray. The walk of one attempt:

1. `RayExecutor.start` creates the actor `bridge-run-<run_id>-<attempt>` in the `suggestion-bridge` namespace, with
   the resources the component's container asks for (`ray_options`); Ray places it on a node with room.
2. The actor tells its place (its node id and the run's folder on that node); the bridge renders the command for
   it, and the actor does the `init` steps and spawns the process there, with the local executor's own spawning
   (`LocalExecutor.spawn`: environment allow-list, process group, metrics file, death with its parent).
3. The bridge long-polls the actor (`_RunActor.events`) for what happened since its cursor: metrics records and
   log lines as they come (no shared filesystem: the metrics file is read on the node), then the exit. Log lines
   are also written to the bridge's `<workdir>/runs/<run_id>/attempts/<n>/` so `bridge logs` shows them.
4. Once the exit is read the actor is killed. Stop, timeout and early stopping ask the actor to stop the process
   (SIGTERM, then SIGKILL after the grace).

A node that dies takes the actor and its process with it (the process dies with its parent): the poll fails with
Ray's actor-died error and the attempt ends as `lost` (the scheduler runs it again, `attempt + 1`). A bridge that
dies leaves the actor running: detached, it outlives its creator, and the next bridge finds it by name from the
ledger (`reattach`) and follows it, ended or not. An actor whose exit nobody collects exits `LINGER_S` after its
run ended, so a bridge that never comes back leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ray
import structlog
from ray.exceptions import ActorUnavailableError, RayActorError

from bridge.errors import ConfigError
from bridge.executors.local import LocalExecutor, LocalRun, ProcessRequest, StartFailed, process_request
from bridge.ports import EventCallback, LogLine, MetricRecord, RunEvent, RunExit, RunSpec
from bridge.workspace import RunPaths, prepare_init

log = structlog.get_logger(__name__)

NAMESPACE = "suggestion-bridge"
CUSTOM_PREFIX = "ray.io/"  # a container resource `ray.io/<name>: n` asks for the custom Ray resource <name>
LINGER_S = 600.0  # how long an ended run's actor waits for a bridge to collect its exit
POLL_WAIT_S = 1.0  # a long poll returns after this long even with nothing new
UNAVAILABLE_RETRIES = 30  # polls of an actor Ray says is unavailable (its node may be restarting) before it is lost


# ---- placement ------------------------------------------------------------------------------------------------

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(m|k|M|G|T|Ki|Mi|Gi|Ti)?\s*$")


def _quantity(value: Any, what: str) -> float:
    """A Kubernetes quantity (`2`, `500m`, `1.5Gi`) as a number."""
    match = _QUANTITY.match(str(value))
    if match is None:
        raise ConfigError(f"container resources: {what} {value!r} is not a quantity (e.g. 2, 500m, 4Gi)")
    number, unit = float(match.group(1)), match.group(2) or ""
    return number / 1000 if unit == "m" else number * _UNITS[unit]


def ray_options(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ray actor options from the container's `resources` (`requests`, else `limits`, as Kubernetes reads them):
    `cpu` -> num_cpus (1 when not asked), `memory` -> memory (bytes), `nvidia.com/gpu` -> num_gpus, and
    `ray.io/<name>` -> the custom resource <name>."""
    resources = resources or {}
    asked: dict[str, Any] = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    options: dict[str, Any] = {"num_cpus": 1.0}
    custom: dict[str, float] = {}
    for key, value in asked.items():
        if key == "cpu":
            options["num_cpus"] = _quantity(value, key)
        elif key == "memory":
            options["memory"] = _quantity(value, key)
        elif key == "nvidia.com/gpu":
            options["num_gpus"] = _quantity(value, key)
        elif key.startswith(CUSTOM_PREFIX):
            custom[key.removeprefix(CUSTOM_PREFIX)] = _quantity(value, key)
    if custom:
        options["resources"] = custom
    return options


def actor_name(run_id: str, attempt: int) -> str:
    """The actor of one attempt: a later bridge finds it by this name alone."""
    return f"bridge-run-{run_id}-{attempt}"


# ---- on the node ----------------------------------------------------------------------------------------------


class _RunActor:
    """One attempt on its node: its process, and what it reported, kept until the bridge has read it."""

    def __init__(self, run_id: str, attempt: int, passthrough: list[str]) -> None:
        self._node_id = ray.get_runtime_context().get_node_id()
        root = Path(tempfile.gettempdir()) / "suggestion-bridge"
        self._paths = RunPaths.for_run(root, run_id)
        self._attempt = attempt
        self._local = LocalExecutor(max_parallel=1, workdir=root, env_passthrough=passthrough, node_id=self._node_id)
        self._events: list[RunEvent] = []
        self._exit: RunExit | None = None
        self._changed = asyncio.Event()
        self._run: LocalRun | StartFailed | None = None
        self._offsets = {"stdout": 0, "stderr": 0}
        self._linger: asyncio.Task[None] | None = None

    def place(self) -> tuple[str, str, str]:
        """Where it runs: its node id, the run's folder and outputs folder on that node."""
        return self._node_id, str(self._paths.artifacts), str(self._paths.outputs)

    async def start(self, request: ProcessRequest, init: list[Any]) -> None:
        """Do the init steps, spawn the process and follow it; its exit is read with `events`."""
        try:
            await prepare_init(init, self._paths.artifacts)
        except Exception as exc:  # git's own words, or a folder that cannot be made
            self._finish(RunExit(None, {}, False, start_error=str(exc), start_error_type="init_failed"))
            return
        if not request.cwd.is_dir():
            # The template's folder exists on the bridge's host, not necessarily here: the run's own folder then.
            request = ProcessRequest(**{**request.__dict__, "cwd": self._paths.artifacts})
        self._paths.artifacts.mkdir(parents=True, exist_ok=True)
        self._run = await self._local.spawn(request, self._on_metrics)
        asyncio.get_running_loop().create_task(self._follow(self._run))

    def _on_metrics(self, record: MetricRecord) -> None:
        self._events.append(record)
        self._changed.set()

    def _read_logs(self, *, final: bool = False) -> None:
        for stream in ("stdout", "stderr"):
            path = self._paths.attempt(self._attempt) / f"{stream}.log"
            try:
                with path.open("rb") as f:
                    f.seek(self._offsets[stream])
                    data = f.read()
            except OSError:
                continue
            # Whole lines only while it runs (the rest comes with the next read); all of it at the end.
            end = len(data) if final else data.rfind(b"\n") + 1
            self._offsets[stream] += end
            for line in data[:end].decode("utf-8", errors="replace").splitlines():
                self._events.append(LogLine(stream=stream, line=line))
            if end:
                self._changed.set()

    async def _follow(self, run: LocalRun | StartFailed) -> None:
        waiting = asyncio.ensure_future(run.wait())
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.2)
            self._read_logs()
        self._read_logs(final=True)
        self._finish(waiting.result())

    def _finish(self, exit_: RunExit) -> None:
        self._exit = exit_
        self._changed.set()
        self._linger = asyncio.get_running_loop().create_task(self._exit_unless_collected())

    async def _exit_unless_collected(self) -> None:
        await asyncio.sleep(LINGER_S)  # the bridge kills it once it has read the exit; this is for one that never does
        ray.kill(ray.get_runtime_context().current_actor)

    async def events(self, cursor: int) -> tuple[list[RunEvent], RunExit | None]:
        """What happened after `cursor` events, and the exit once everything before it was told; waits up to
        `POLL_WAIT_S` for something new."""
        if len(self._events) <= cursor and self._exit is None:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=POLL_WAIT_S)
        events = self._events[cursor:]
        return events, self._exit

    async def stop(self, grace_s: float) -> None:
        """SIGTERM the process group, SIGKILL after `grace_s`."""
        if self._run is not None:
            await self._run.stop(grace_s)


# ---- in the bridge --------------------------------------------------------------------------------------------


class RayRun:
    """An attempt on the cluster, followed from the bridge."""

    def __init__(
        self, actor: Any, name: str, run_id: str, *, node_id: str, on_event: EventCallback, log_dir: Path
    ) -> None:
        self._actor = actor
        self._name = name
        self._run_id = run_id
        self._node_id = node_id
        self._on_event = on_event
        self._log_dir = log_dir
        self._done: asyncio.Future[RunExit] = asyncio.ensure_future(self._follow())

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        """The actor's name: all a later bridge needs to find it (`RayExecutor.reattach`)."""
        return {"ray_actor": self._name, "namespace": NAMESPACE}

    async def _follow(self) -> RunExit:
        cursor, unavailable = 0, 0
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with (self._log_dir / "stdout.log").open("w") as out, (self._log_dir / "stderr.log").open("w") as err:
            while True:
                try:
                    events, exit_ = await self._actor.events.remote(cursor)
                except ActorUnavailableError:
                    unavailable += 1
                    if unavailable > UNAVAILABLE_RETRIES:
                        return self._lost("its actor stayed unavailable")
                    await asyncio.sleep(POLL_WAIT_S)  # Ray says try again later: there is nothing to wait on
                    continue
                except RayActorError as exc:  # the actor died, with its node or otherwise
                    return self._lost(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                unavailable = 0
                cursor += len(events)
                for event in events:
                    if isinstance(event, LogLine):
                        (out if event.stream == "stdout" else err).write(event.line + "\n")
                    self._on_event(event)
                out.flush()
                err.flush()
                if exit_ is not None:
                    with contextlib.suppress(Exception):  # already gone is as good
                        ray.kill(self._actor)
                    ended: RunExit = exit_
                    return ended

    def _lost(self, why: str) -> RunExit:
        log.warning("ray_run_lost", run_id=self._run_id, node_id=self._node_id, actor=self._name, reason=why)
        return RunExit(None, {}, False, start_error=f"node {self._node_id} lost: {why}", lost=True)

    async def wait(self) -> RunExit:
        return await asyncio.shield(self._done)

    async def stop(self, grace_s: float) -> None:
        if self._done.done():
            return
        with contextlib.suppress(RayActorError, ActorUnavailableError):
            await self._actor.stop.remote(grace_s)
        await asyncio.shield(self._done)

    def detach(self) -> None:
        """Stop following (the bridge is exiting); the actor goes on for a later bridge to re-attach."""
        self._done.cancel()


class RayExecutor:
    """Runs attempts as Ray actors on the cluster at `address` (host:port, or ray://host:10001)."""

    def __init__(
        self,
        address: str,
        *,
        max_parallel: int = 64,
        workdir: Path,
        env_passthrough: Iterable[str] = (),
    ) -> None:
        self._address = address
        self._max_parallel = max_parallel
        self._workdir = workdir
        self._passthrough = list(env_passthrough)
        self._actor_class: Any = None
        self._runs: set[RayRun] = set()

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    def _connect(self) -> Any:
        if self._actor_class is None:
            if not ray.is_initialized():
                handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
                # Runs' own output stays on their nodes and comes back through the actor, never the driver's log.
                ray.init(address=self._address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
                if threading.current_thread() is threading.main_thread():
                    # Ray's core worker installs its own crash handler for SIGTERM, which aborts the process: the
                    # bridge's own handlers (a drain on SIGTERM, a clean stop on SIGINT) are put back.
                    for sig, handler in handlers.items():
                        if handler is not None:
                            signal.signal(sig, handler)
            self._actor_class = ray.remote(_RunActor)
        return self._actor_class

    def _log_dir(self, run_id: str, attempt: int) -> Path:
        return RunPaths.for_run(self._workdir, run_id).attempt(attempt)

    def _follow(
        self, actor: Any, name: str, run_id: str, *, node_id: str, attempt: int, on_event: EventCallback
    ) -> RayRun:
        run = RayRun(actor, name, run_id, node_id=node_id, on_event=on_event, log_dir=self._log_dir(run_id, attempt))
        self._runs.add(run)
        run._done.add_done_callback(lambda _: self._runs.discard(run))
        return run

    async def start(self, spec: RunSpec, on_event: EventCallback) -> RayRun:
        """Create the attempt's actor where its resources fit, then start its process there."""
        actor_class = self._connect()
        name = actor_name(spec.run_id, spec.attempt)
        actor = actor_class.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",  # outlives this bridge, for the next one to re-attach
            max_restarts=0,  # a restarted actor would have lost its process: the attempt is lost instead
            get_if_exists=True,  # one left by a bridge killed between this and its ledger record: the same attempt
            **ray_options(spec.resources),
        ).remote(spec.run_id, spec.attempt, self._passthrough)
        node_id, artifacts, outputs = await actor.place.remote()
        request = process_request(spec, RunPaths(artifacts=Path(artifacts), outputs=Path(outputs)), node_id)
        await actor.start.remote(request, list(spec.init))
        log.debug("ray_run_started", run_id=spec.run_id, attempt=spec.attempt, node_id=node_id, actor=name)
        return self._follow(actor, name, spec.run_id, node_id=node_id, attempt=spec.attempt, on_event=on_event)

    async def reattach(self, run_id: str, info: Mapping[str, Any], on_event: EventCallback) -> RayRun | None:
        """Follow the actor the ledger names, if the cluster still has it; None when it is gone."""
        name = info.get("ray_actor")
        if not isinstance(name, str) or not name.startswith(f"bridge-run-{run_id}-"):
            return None  # not an attempt this executor started for this run: nothing of it to find
        self._connect()
        try:
            actor = ray.get_actor(name, namespace=NAMESPACE)
            node_id, _, _ = await actor.place.remote()
        except (ValueError, RayActorError, ActorUnavailableError):
            return None
        attempt = int(name.rsplit("-", 1)[1])
        log.info("ray_run_reattached", run_id=run_id, actor=name, node_id=node_id)
        return self._follow(actor, name, run_id, node_id=str(node_id), attempt=attempt, on_event=on_event)

    async def close(self) -> None:
        """Stop following: the actors run on, detached, for a later bridge to re-attach to, or end by themselves."""
        for run in list(self._runs):
            run.detach()
