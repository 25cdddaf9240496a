"""The Ray executor: each attempt runs on a Ray actor (a "slot") that Ray placed on a node with room for the
resources the attempt asks, and spawns the run's process there.

The only module that imports ray. The walk of one attempt:

1. `RayExecutor.start` takes a slot of the attempt's resource shape (`ray_options` of the container's
   `resources`): an idle one the bridge kept, or a new named, detached actor `bridge-slot-<uuid>` in the
   `suggestion-bridge` namespace once Ray has placed it (`_Slots`: a new actor is a new worker process, about a
   second, so slots are reused from one attempt to the next).
2. The slot tells its place (its node id and the run's folder on that node); the bridge renders the command for
   it, and the slot does the `init` steps and spawns the process there, with the local executor's own spawning
   (`LocalExecutor.spawn`: environment allow-list, process group, metrics file, death with its parent).
3. The bridge long-polls the slot (`_Slot.events`) for what happened since its cursor: metrics records and log
   lines as they come (no shared filesystem: the metrics file is read on the node), then the exit. Log lines are
   also written to the bridge's `<workdir>/runs/<run_id>/attempts/<n>/`, where the local executor keeps them.
4. Once the exit is read the slot forgets the attempt and goes back to the bridge's idle slots. Stop, timeout
   and early stopping ask the slot to stop the process (SIGTERM, then SIGKILL after the grace).

A node that dies takes the slot and its process with it (the process dies with its parent): the poll fails with
Ray's actor-died error and the attempt ends as `lost` (the scheduler runs it again, `attempt + 1`). A bridge that
dies leaves its slots running: detached, they outlive their creator, and the next bridge finds the attempt by the
slot's name and the run id in the ledger (`reattach`) and follows it, ended or not. A slot whose ended attempt
nobody collects exits `LINGER_S` after it ended, and an idle one after `IDLE_EXIT_S`, so a bridge that never
comes back leaves nothing holding the cluster's resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import ray
import structlog
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from bridge.errors import ConfigError
from bridge.executors.base import EventCallback, LogLine, MetricRecord, RunEvent, RunExit, RunSpec
from bridge.executors.local import LocalExecutor, LocalRun, ProcessRequest, StartFailed, process_request
from bridge.executors.workspace import RunPaths, prepare_init

log = structlog.get_logger(__name__)

NAMESPACE = "suggestion-bridge"
CUSTOM_PREFIX = "ray.io/"  # a container resource `ray.io/<name>: n` asks for the custom Ray resource <name>
LINGER_S = 600.0  # how long a slot whose attempt ended waits for a bridge to collect its exit
IDLE_S = 1.0  # how long the bridge keeps an idle slot for the next attempt of its shape
IDLE_EXIT_S = 30.0  # how long a slot nobody gives an attempt lives (the bridge that had it may be gone)
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


# ---- on the node ----------------------------------------------------------------------------------------------


class _Hosted:
    """One attempt on its node: its process, and what it reported, kept until the bridge has read it."""

    def __init__(self, paths: RunPaths, attempt: int, local: LocalExecutor) -> None:
        self.paths = paths
        self._attempt = attempt
        self._local = local
        self.events: list[RunEvent] = []
        self.exit: RunExit | None = None
        self.changed = asyncio.Event()
        self._run: LocalRun | StartFailed | None = None
        self._offsets = {"stdout": 0, "stderr": 0}
        self._following: asyncio.Task[None] | None = None

    async def start(self, request: ProcessRequest, init: list[Any]) -> None:
        try:
            await prepare_init(init, self.paths.artifacts)
        except Exception as exc:  # git's own words, or a folder that cannot be made
            self._finish(RunExit(None, {}, False, start_error=str(exc), start_error_type="init_failed"))
            return
        if not request.cwd.is_dir():
            # The template's folder exists on the bridge's host, not necessarily here: the run's own folder then.
            request = ProcessRequest(**{**request.__dict__, "cwd": self.paths.artifacts})
        self.paths.artifacts.mkdir(parents=True, exist_ok=True)
        self._run = await self._local.spawn(request, self._on_metrics)
        self._following = asyncio.get_running_loop().create_task(self._follow(self._run))

    def _on_metrics(self, record: MetricRecord) -> None:
        self.events.append(record)
        self.changed.set()

    def _read_logs(self, *, final: bool = False) -> None:
        for stream in ("stdout", "stderr"):
            path = self.paths.attempt(self._attempt) / f"{stream}.log"
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
                self.events.append(LogLine(stream=stream, line=line))
            if end:
                self.changed.set()

    async def _follow(self, run: LocalRun | StartFailed) -> None:
        waiting = asyncio.ensure_future(run.wait())
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.2)
            self._read_logs()
        self._read_logs(final=True)
        self._finish(waiting.result())

    def _finish(self, exit_: RunExit) -> None:
        self.exit = exit_
        self.changed.set()

    async def stop(self, grace_s: float) -> None:
        if self._run is not None:
            await self._run.stop(grace_s)


class _Slot:
    """A Ray actor holding one run's resources on its node, hosting its attempts one after another.

    Starting a Ray actor starts a worker process (about a second of imports), far more than a short run: so a slot
    runs one attempt, and once the bridge has read its exit, the next attempt of the same resource shape that
    the bridge gives it. A slot nobody gives anything exits by itself (`IDLE_EXIT_S`), and so does one whose
    ended attempt nobody collects (`LINGER_S`): a bridge that never comes back leaves nothing holding resources.
    """

    def __init__(self, passthrough: list[str]) -> None:
        self._node_id = ray.get_runtime_context().get_node_id()
        self._root = Path(tempfile.gettempdir()) / "suggestion-bridge"
        self._local = LocalExecutor(
            max_parallel=1, workdir=self._root, env_passthrough=passthrough, node_id=self._node_id
        )
        self._hosted: dict[tuple[str, int], _Hosted] = {}
        self._idle_since: float | None = time.monotonic()
        self._uncollected_since: float | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def ping(self) -> str:
        """Its node id: answered once Ray has placed it and its worker runs. From then on it watches whether it
        is forgotten (no bridge may be left to give it anything, or to kill it)."""
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._exit_when_forgotten())
        return self._node_id

    async def place(self, run_id: str, attempt: int) -> tuple[str, str, str]:
        """Take `attempt` of `run_id`: its node id, the run's folder and outputs folder on that node."""
        await self.ping()
        paths = RunPaths.for_run(self._root, run_id)
        self._hosted[(run_id, attempt)] = _Hosted(paths, attempt, self._local)
        self._idle_since = None
        return self._node_id, str(paths.artifacts), str(paths.outputs)

    async def start(self, run_id: str, attempt: int, request: ProcessRequest, init: list[Any]) -> None:
        """Do the init steps, spawn the process and follow it; its exit is read with `events`."""
        await self._hosted[(run_id, attempt)].start(request, init)

    async def events(self, run_id: str, attempt: int, cursor: int) -> tuple[list[RunEvent], RunExit | None, str]:
        """What the attempt did after `cursor` events, its exit once everything before it was told, and the node
        id; waits up to `POLL_WAIT_S` for something new. A KeyError: this slot does not have that attempt."""
        hosted = self._hosted[(run_id, attempt)]
        if len(hosted.events) <= cursor and hosted.exit is None:
            hosted.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hosted.changed.wait(), timeout=POLL_WAIT_S)
        return hosted.events[cursor:], hosted.exit, self._node_id

    async def stop(self, run_id: str, attempt: int, grace_s: float) -> None:
        """SIGTERM the attempt's process group, SIGKILL after `grace_s`."""
        hosted = self._hosted.get((run_id, attempt))
        if hosted is not None:
            await hosted.stop(grace_s)

    def release(self, run_id: str, attempt: int) -> None:
        """The bridge has the attempt's exit: forget it, and be ready for another."""
        self._hosted.pop((run_id, attempt), None)
        if not self._hosted:
            self._idle_since = time.monotonic()

    async def _exit_when_forgotten(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            idle = self._idle_since is not None and now - self._idle_since > IDLE_EXIT_S
            ended = [h.exit for h in self._hosted.values()]
            uncollected = bool(ended) and all(e is not None for e in ended)
            self._uncollected_since = (self._uncollected_since or now) if uncollected else None
            if idle or (self._uncollected_since is not None and now - self._uncollected_since > LINGER_S):
                ray.kill(ray.get_runtime_context().current_actor)


# ---- in the bridge --------------------------------------------------------------------------------------------


class RayRun:
    """An attempt on a slot of the cluster, followed from the bridge."""

    def __init__(
        self,
        slot: Any,
        slot_name: str,
        spec: tuple[str, int],
        *,
        node_id: str,
        on_event: EventCallback,
        log_dir: Path,
        on_end: Callable[[RayRun, bool], None],
    ) -> None:
        self.slot = slot
        self._slot_name = slot_name
        self._run_id, self._attempt = spec
        self._node_id = node_id
        self._on_event = on_event
        self._log_dir = log_dir
        self._on_end = on_end
        self._done: asyncio.Future[RunExit] = asyncio.ensure_future(self._follow())

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        """The slot's name and the attempt: all a later bridge needs to find it (`RayExecutor.reattach`)."""
        return {"ray_actor": self._slot_name, "namespace": NAMESPACE, "attempt": self._attempt}

    async def _follow(self) -> RunExit:
        cursor, unavailable = 0, 0
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with (self._log_dir / "stdout.log").open("w") as out, (self._log_dir / "stderr.log").open("w") as err:
            while True:
                try:
                    events, exit_, _ = await self.slot.events.remote(self._run_id, self._attempt, cursor)
                except ActorUnavailableError:
                    unavailable += 1
                    if unavailable > UNAVAILABLE_RETRIES:
                        return self._lost("its actor stayed unavailable")
                    await asyncio.sleep(POLL_WAIT_S)  # Ray says try again later: there is nothing to wait on
                    continue
                except RayActorError as exc:  # the actor died, with its node or otherwise
                    return self._lost(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                except RayTaskError as exc:  # the slot no longer has this attempt
                    return self._lost(f"its slot no longer has it ({type(exc).__name__})")
                unavailable = 0
                cursor += len(events)
                for event in events:
                    if isinstance(event, LogLine):
                        (out if event.stream == "stdout" else err).write(event.line + "\n")
                    self._on_event(event)
                out.flush()
                err.flush()
                if exit_ is not None:
                    self._on_end(self, True)
                    ended: RunExit = exit_
                    return ended

    def _lost(self, why: str) -> RunExit:
        log.warning("ray_run_lost", run_id=self._run_id, node_id=self._node_id, actor=self._slot_name, reason=why)
        self._on_end(self, False)
        return RunExit(None, {}, False, start_error=f"node {self._node_id} lost: {why}", lost=True)

    async def wait(self) -> RunExit:
        return await asyncio.shield(self._done)

    async def stop(self, grace_s: float) -> None:
        if self._done.done():
            return
        with contextlib.suppress(RayActorError, ActorUnavailableError, RayTaskError):
            await self.slot.stop.remote(self._run_id, self._attempt, grace_s)
        await asyncio.shield(self._done)

    def detach(self) -> None:
        """Stop following (the bridge is exiting); the slot goes on for a later bridge to re-attach."""
        self._done.cancel()


class _LostAtStart:
    """An attempt whose slot died as it was given it: lost before it ran, to run again."""

    def __init__(self, run_id: str, why: str) -> None:
        self._run_id = run_id
        self._why = why

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def node_id(self) -> str:
        return ""

    @property
    def reattach_info(self) -> Mapping[str, Any]:
        return {}

    async def wait(self) -> RunExit:
        return RunExit(None, {}, False, start_error=f"its slot was lost: {self._why}", lost=True)

    async def stop(self, grace_s: float) -> None:
        return None


class _Slots:
    """The bridge's idle slots by resource shape, handed to the next attempt of that shape.

    A slot is created only when no idle one fits and none of that shape is being created already: while the
    cluster is full, one creation waits in Ray's queue and the rest wait here for a slot that frees, so ended
    attempts' slots are reused instead of Ray starting a worker process for every attempt. A slot left idle with
    nobody waiting is killed after `IDLE_S`, so it holds no resources another shape needs.
    """

    def __init__(self, create: Callable[[dict[str, Any]], tuple[Any, str]]) -> None:
        self._create = create
        self._idle: dict[str, list[tuple[Any, str]]] = defaultdict(list)
        self._waiters: dict[str, deque[asyncio.Future[tuple[Any, str]]]] = defaultdict(deque)
        self._creating: set[str] = set()
        self._reapers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unplaced: set[Any] = set()  # created, not yet placed by Ray: killed on close, or Ray places them later

    async def acquire(self, options: dict[str, Any]) -> tuple[Any, str]:
        """A slot of this resource shape: an idle one, or a new one once Ray has placed it."""
        shape = json.dumps(options, sort_keys=True)
        if self._idle[shape]:
            slot, name = self._idle[shape].pop()
            if (reaper := self._reapers.pop(name, None)) is not None:
                reaper.cancel()
            return slot, name
        waiter: asyncio.Future[tuple[Any, str]] = asyncio.get_running_loop().create_future()
        self._waiters[shape].append(waiter)
        self._grow(shape, options)
        return await waiter

    def _grow(self, shape: str, options: dict[str, Any]) -> None:
        if shape in self._creating or not self._waiters[shape]:
            return
        self._creating.add(shape)
        task = asyncio.get_running_loop().create_task(self._new(shape, options))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _new(self, shape: str, options: dict[str, Any]) -> None:
        slot: Any = None
        try:
            slot, name = self._create(options)
            self._unplaced.add(slot)
            await slot.ping.remote()  # returns once Ray has placed it and its worker runs
        except Exception as exc:  # infeasible resources, a cluster gone: the first waiter hears why
            self._unplaced.discard(slot)
            self._creating.discard(shape)
            while self._waiters[shape]:
                waiter = self._waiters[shape].popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            return
        self._unplaced.discard(slot)
        self._creating.discard(shape)
        self.give_back(shape, slot, name)
        self._grow(shape, options)  # more attempts wait: try for one more slot

    def give_back(self, shape: str, slot: Any, name: str) -> None:
        """A slot whose attempt ended: to the next waiter of its shape, else idle for a while."""
        while self._waiters[shape]:
            waiter = self._waiters[shape].popleft()
            if not waiter.done():
                waiter.set_result((slot, name))
                return
        self._idle[shape].append((slot, name))
        self._reapers[name] = asyncio.get_running_loop().call_later(IDLE_S, self._reap, shape, slot, name)

    def _reap(self, shape: str, slot: Any, name: str) -> None:
        self._reapers.pop(name, None)
        if (slot, name) in self._idle[shape]:
            self._idle[shape].remove((slot, name))
            with contextlib.suppress(Exception):  # already gone is as good
                ray.kill(slot)

    def close(self) -> None:
        """Kill every idle slot (the bridge is exiting); slots with attempts go on, for a later bridge."""
        for reaper in self._reapers.values():
            reaper.cancel()
        for idle in self._idle.values():
            for slot, _ in idle:
                with contextlib.suppress(Exception):
                    ray.kill(slot)
        self._idle.clear()
        for task in self._tasks:
            task.cancel()
        for slot in self._unplaced:
            with contextlib.suppress(Exception):
                ray.kill(slot)
        self._unplaced.clear()


class RayExecutor:
    """Runs attempts on Ray slots of the cluster at `address` (host:port, or ray://host:10001)."""

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
        self._slot_class: Any = None
        self._slots = _Slots(self._new_slot)
        self._runs: set[RayRun] = set()

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    def _connect(self) -> Any:
        if self._slot_class is None:
            if not ray.is_initialized():
                handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
                # Runs' own output stays on their nodes and comes back through the slot, never the driver's log.
                ray.init(address=self._address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
                if threading.current_thread() is threading.main_thread():
                    # Ray's core worker installs its own crash handler for SIGTERM, which aborts the process: the
                    # bridge's own handlers (a drain on SIGTERM, a clean stop on SIGINT) are put back.
                    for sig, handler in handlers.items():
                        if handler is not None:
                            signal.signal(sig, handler)
            self._slot_class = ray.remote(_Slot)
        return self._slot_class

    def _new_slot(self, options: dict[str, Any]) -> tuple[Any, str]:
        name = f"bridge-slot-{uuid.uuid4().hex}"
        slot = (
            self._connect()
            .options(
                name=name,
                namespace=NAMESPACE,
                lifetime="detached",  # outlives this bridge, for the next one to re-attach
                max_restarts=0,  # a restarted slot would have lost its process: the attempt is lost instead
                **options,
            )
            .remote(self._passthrough)
        )
        return slot, name

    async def start(self, spec: RunSpec, on_event: EventCallback) -> RayRun | _LostAtStart:
        """Take a slot where the attempt's resources fit, then start its process there."""
        self._connect()
        options = ray_options(spec.resources)
        shape = json.dumps(options, sort_keys=True)
        slot, name = await self._slots.acquire(options)
        try:
            node_id, artifacts, outputs = await slot.place.remote(spec.run_id, spec.attempt)
            request = process_request(spec, RunPaths(artifacts=Path(artifacts), outputs=Path(outputs)), node_id)
            await slot.start.remote(spec.run_id, spec.attempt, request, list(spec.init))
        except (RayActorError, ActorUnavailableError) as exc:  # its node died as it was given the attempt
            log.warning("ray_run_lost", run_id=spec.run_id, actor=name, reason=type(exc).__name__)
            return _LostAtStart(spec.run_id, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        log.debug("ray_run_started", run_id=spec.run_id, attempt=spec.attempt, node_id=node_id, actor=name)

        def ended(run: RayRun, reusable: bool) -> None:
            self._runs.discard(run)
            if reusable:
                slot.release.remote(spec.run_id, spec.attempt)
                self._slots.give_back(shape, slot, name)

        return self._follow(slot, name, (spec.run_id, spec.attempt), node_id=node_id, on_event=on_event, ended=ended)

    def _follow(
        self,
        slot: Any,
        name: str,
        spec: tuple[str, int],
        *,
        node_id: str,
        on_event: EventCallback,
        ended: Callable[[RayRun, bool], None],
    ) -> RayRun:
        log_dir = RunPaths.for_run(self._workdir, spec[0]).attempt(spec[1])
        run = RayRun(slot, name, spec, node_id=node_id, on_event=on_event, log_dir=log_dir, on_end=ended)
        self._runs.add(run)
        return run

    async def reattach(self, run_id: str, info: Mapping[str, Any], on_event: EventCallback) -> RayRun | None:
        """Follow the attempt on the slot the ledger names, if the cluster still has both; None when not."""
        name, attempt = info.get("ray_actor"), info.get("attempt")
        if not isinstance(name, str) or not name.startswith("bridge-slot-") or not isinstance(attempt, int):
            return None  # not an attempt this executor started: nothing of it to find
        self._connect()
        try:
            slot = ray.get_actor(name, namespace=NAMESPACE)
            _, _, node_id = await slot.events.remote(run_id, attempt, 0)
        except (ValueError, RayActorError, ActorUnavailableError, RayTaskError):
            return None
        log.info("ray_run_reattached", run_id=run_id, actor=name, node_id=node_id)

        def ended(run: RayRun, reusable: bool) -> None:
            self._runs.discard(run)
            with contextlib.suppress(Exception):  # its resource shape is not known here: it is not reused
                ray.kill(slot)

        return self._follow(slot, name, (run_id, attempt), node_id=str(node_id), on_event=on_event, ended=ended)

    async def close(self) -> None:
        """Stop following: attempts run on, detached, for a later bridge to re-attach to, or end by themselves."""
        for run in list(self._runs):
            run.detach()
        self._slots.close()
