"""A process of the cluster that has busy gRPC channels starts children with a `preexec_fn`, as the Ray Client proxy
starts the server of each `ray://` connection, and every child gets as far as its exec.

With gRPC's fork handlers on, about 2% of such children died before their exec (SIGABRT or SIGSEGV in gRPC's
threads, restarted in the child): for the proxy that was a `ray://` connection failing with "Starting Ray client
server failed" (tests/ray_cluster.py turns them off for the whole cluster).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.ray_cluster import RayCluster

SPAWNS = 400  # at 2% each, the old cluster lost one with a probability of 1 - 0.98**400 > 0.9997

# What the proxy does, in a process of its own: keep a gRPC channel busy from two threads (the proxy serves its
# clients and talks to the GCS from several) and meanwhile spawn SPAWNS children through a preexec_fn, as Ray's
# start_ray_process does for fate-sharing. Prints each child's exit code (negative: killed by that signal).
SPAWNER = """
import json, subprocess, sys, threading
from concurrent import futures
import grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
echo_handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", {"Echo": echo_handler}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
echo = channel.unary_unary("/t.Echo/Echo")
done = threading.Event()

def busy():
    while not done.is_set():
        echo(b"x")

threads = [threading.Thread(target=busy) for _ in range(2)]
for t in threads:
    t.start()
codes = [subprocess.Popen(["true"], preexec_fn=lambda: None).wait() for _ in range(int(sys.argv[1]))]
done.set()
for t in threads:
    t.join()
channel.close()
server.stop(None)
print(json.dumps(codes))
"""

# A driver that runs SPAWNER on the cluster, as a child of one of its workers: with the environment every process
# of the cluster inherits from `ray start`, as the proxy does. A spawner that hangs (a child stuck before its exec)
# fails the task at its timeout.
DRIVER = """
import subprocess, sys
import ray

@ray.remote(num_cpus=1)
def spawner(code, n):
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout

ray.init(address=sys.argv[1], logging_level="error")
print(ray.get(spawner.remote(sys.argv[2], int(sys.argv[3]))))
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_cluster_process_with_busy_grpc_channels_starts_children_that_all_reach_their_exec(
    ray_cluster: RayCluster,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, ray_cluster.address, SPAWNER, str(SPAWNS)],
        check=False, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    codes: list[int] = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(codes) == SPAWNS
    died = [code for code in codes if code != 0]
    assert died == [], f"{len(died)} of {SPAWNS} children died before their exec (exit codes {sorted(set(died))})"
