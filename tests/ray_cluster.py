"""Pytest plugin: a real three-node Ray cluster on this machine, for the tests of the Ray executor.

Loaded from tests/conftest.py. ``ray_cluster`` (session) starts ``ray start --head`` and two more nodes, each
with one CPU and a custom resource naming it (``n0``, ``n1``, ``n2``), in a temp dir of its own, on free ports.
Ray stays on loopback only inside a private network namespace (../shared/notes/ray-on-loopback.md), so the
fixture skips its tests unless the session runs in one (``make test`` runs it under ``unshare -n``). The PID
namespace is shared with whatever else runs on the machine, so the cluster is stopped by the processes that
carry its own temp dir in their command line, never by ``ray stop``.

When a test that uses the cluster fails, its report ends with the tail of the cluster's logs that say why a node or
a Ray Client connection failed (``ray_client_server*``, ``raylet*.err``, ``gcs_server.err``): the temp dir is gone
with the CI machine, the report is what CI prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.polling import wait_until

RAY = Path(sys.executable).parent / "ray"
NODES = 3
START_TIMEOUT_S = 120
# The logs that tell why a node or a Ray Client connection failed, and how much of each a failure report shows.
FAILURE_LOGS = ("ray_client_server*", "raylet*.err", "gcs_server.err")
FAILURE_LOG_LINES = 40
_TEMP_DIR = pytest.StashKey[Path]()


def in_private_network() -> bool:
    """True when this process's network namespace has only the loopback interface (asked of the kernel: /sys
    may still show the namespace it was mounted in)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker`, or that hold a file under it open: Ray's agents rename
    themselves (`ray::DashboardAgent`), so only their open log files still tell which cluster they are of."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() or any(
                os.readlink(fd).startswith(marker) for fd in (entry / "fd").iterdir()
            ):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@dataclass
class RayCluster:
    """A cluster this session owns: its address, its temp dir (in every one of its processes' command lines)."""

    address: str
    temp_dir: Path
    client_address: str = ""  # ray://127.0.0.1:PORT, the head's Ray Client server

    def raylet_pid(self, node: int) -> int:
        """The raylet of node `node` (0 is the head), found by the custom resource only it has."""
        marker = f"--static_resource_list=n{node},".encode()
        pids = [p for p in _pids_with(str(self.temp_dir)) if marker in _cmdline(p)]
        assert len(pids) == 1, f"raylet of node {node}: {pids}"
        return pids[0]

    def kill_node(self, node: int) -> None:
        """A node failure: SIGKILL its raylet (its workers and their processes die with it)."""
        os.kill(self.raylet_pid(node), signal.SIGKILL)

    def restart_node(self, node: int) -> None:
        """Start node `node` again (after `kill_node`), with its one CPU and resource n<node>."""
        marker = f"--static_resource_list=n{node},".encode()
        for pid in [p for p in _pids_with(str(self.temp_dir)) if marker in _cmdline(p)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # what the dead raylet left (its agents)
        _start_worker(self, node)

    def node_ids(self) -> dict[str, str]:
        """Ray node id -> our node name (n0, n1, n2), from a short-lived driver."""
        script = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='error');"
            "print(json.dumps({n['NodeID']: next(k for k in n['Resources'] if k in ('n0','n1','n2'))"
            " for n in ray.nodes() if n['Alive']}))"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
        ids: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
        return ids

    def clear_slots(self) -> None:
        """Kill the bridge slots earlier tests left and wait until every node's CPU is free again: a test's event
        loop can end before its bridge kills its idle slots, and such a slot lives 30 s more (IDLE_EXIT_S), holding
        a CPU the next test counts on (six runs over all three nodes found only two)."""
        script = (
            f"import ray; ray.init(address={self.address!r}, logging_level='error');"
            "[ray.kill(ray.get_actor(a['name'], namespace=a['namespace']))"
            " for a in ray.util.list_named_actors(all_namespaces=True) if a['name'].startswith('bridge-slot-')];"
            "print(ray.available_resources().get('CPU', 0))"
        )

        def all_cpus_free() -> bool:
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
            return float(out.stdout.strip().splitlines()[-1]) >= NODES

        wait_until(all_cpus_free, timeout=90, interval=0.5)

    def stop(self) -> None:
        """SIGKILL every process of this cluster, found by its temp dir, until none is left."""

        def none_left() -> bool:
            pids = _pids_with(str(self.temp_dir))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not pids

        wait_until(none_left, timeout=30, interval=0.2)


def _env() -> dict[str, str]:
    # gRPC's fork handlers off in every process of the cluster. With them on (grpcio's default), a process with
    # live gRPC channels that forks with a preexec_fn gets gRPC's threads restarted in the child before the exec,
    # and the child sometimes dies of them (SIGSEGV/SIGABRT in cygrpc, grpc/grpc#43055). The Ray Client proxy is
    # such a process: it starts each client's server that way (fate-sharing), so a `ray://` connection failed now
    # and then with "Starting Ray client server failed" and an empty ray_client_server_23000.err. Nothing in the
    # cluster uses gRPC in a forked child without exec, which is all those handlers are for.
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "GRPC_ENABLE_FORK_SUPPORT": "0"}


def _start_worker(cluster: RayCluster, node: int) -> None:
    worker = [str(RAY), "start", f"--address={cluster.address}", "--num-cpus=1", "--disable-usage-stats"]
    resources = ["--resources", json.dumps({f"n{node}": 1})]
    subprocess.run([*worker, *resources], env=_env(), check=True, capture_output=True, timeout=START_TIMEOUT_S)


def start_cluster(temp_dir: Path) -> RayCluster:
    """Start a head and two more nodes in `temp_dir`, each with one CPU and resource n<i>."""
    port, client_port = _free_port(), _free_port()
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [
        str(RAY), "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false",
        f"--ray-client-server-port={client_port}", "--resources", json.dumps({"n0": 1}), *common,
    ]  # fmt: skip
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, client_address=f"ray://127.0.0.1:{client_port}")
    try:
        subprocess.run(head, env=_env(), check=True, capture_output=True, timeout=START_TIMEOUT_S)
        for node in range(1, NODES):
            _start_worker(cluster, node)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def cluster_logs(temp_dir: Path, lines: int = FAILURE_LOG_LINES) -> str:
    """The last `lines` lines of each of the cluster's FAILURE_LOGS (an empty one says so: the server it belongs to
    died before writing anything)."""
    logs = temp_dir / "session_latest" / "logs"
    parts = []
    for path in sorted({p for pattern in FAILURE_LOGS for p in logs.glob(pattern)}):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"==> {path} <==\n" + ("\n".join(tail) if tail else "(empty)"))
    return "\n".join(parts) if parts else f"no Ray logs under {logs}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that uses the cluster gets its logs' tails in its report (see the module's docstring)."""
    report = yield
    temp_dir = item.config.stash.get(_TEMP_DIR, None)
    if report.failed and temp_dir is not None and "ray_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append((f"Ray cluster logs ({call.when})", cluster_logs(temp_dir)))
    return report


@pytest.fixture(autouse=True)
def _idle_ray_cluster(request: pytest.FixtureRequest) -> None:
    """A test that uses the cluster starts with no slot of an earlier test on it (RayCluster.clear_slots)."""
    if "ray_cluster" in request.fixturenames:
        cluster: RayCluster = request.getfixturevalue("ray_cluster")
        cluster.clear_slots()


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """The session's three-node cluster (see the module's docstring); skips outside a private network."""
    # In CI a Ray suite that cannot run fails: skipped, it would let CI pass without Ray tested at all.
    give_up = pytest.fail if os.environ.get("CI") else pytest.skip
    try:
        import ray  # noqa: F401  (only whether the extra is installed)
    except ImportError:
        give_up("Ray is not installed: pip install 'suggestion-bridge[ray]'")
    if not in_private_network():
        give_up("Ray tests run in a private network namespace: `make test` runs them under `unshare -n`")
    # Ray's socket paths must stay short (107 bytes): a temp dir of its own under /tmp, not pytest's deep one.
    temp_dir = Path(tempfile.mkdtemp(prefix="bridge-ray-", dir="/tmp"))
    request.config.stash[_TEMP_DIR] = temp_dir  # before the start: a node that fails to start has logs too
    cluster = start_cluster(temp_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
