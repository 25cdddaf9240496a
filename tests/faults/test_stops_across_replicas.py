"""Three `bridge serve` replicas in one group, eight studies over every partition, one long run each: a
`bridge stop --study S --suggestion ID` for each, as an operator types it, stops all eight, whichever replica
runs each, and the history holds (one final result per run, none executed twice)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.faults.harness import Cluster, Executions, partition_of, read_to_end, stop_all, study_names
from tests.faults.history import History, problems_of
from tests.polling import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


async def _bridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def test_a_stop_reaches_its_run_on_any_of_three_replicas(kafka_bootstrap: str, tmp_path: Path) -> None:
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=2, batching={"linger_ms": 50})
    replicas = [cluster.replica(name) for name in ("a", "b", "c")]
    studies = study_names(f"st{uuid.uuid4().hex[:6]}", per_partition=2)  # 8 studies, 2 on each partition
    gate = tmp_path / "never"  # the runs wait for it: only a stop ends them
    executions = Executions(cluster.record)
    try:
        for replica in replicas:
            replica.start()
        await asyncio.gather(*(r.wait_ready(timeout=90) for r in replicas))
        await eventually(
            lambda: all(r.ready() for r in replicas), timeout=60, interval=0.1, in_thread=True, what="never all ready"
        )
        await _publish_long_runs(cluster, studies, gate)
        await eventually(
            lambda: len({e.name for e in executions.running(0)}) == len(studies),
            timeout=90,
            what=lambda: f"running: {sorted(e.name for e in executions.running(0))}",
        )
        by_replica = {r.name: sorted(e.name for e in executions.running(0) if e.ran_in(r.workdir)) for r in replicas}
        print(f"runs by replica: {by_replica}")
        assert sum(1 for names in by_replica.values() if names) >= 2, "the runs did not spread over the replicas"

        outs = await asyncio.gather(
            *(
                _bridge(
                    "stop",
                    "--study",
                    s,
                    "--suggestion",
                    f"{s}-long",
                    "-c",
                    str(cluster.config),
                    "--wait",
                    "60",
                    cwd=tmp_path,
                )
                for s in studies
            )
        )
        failed = [(s, o.returncode, o.stderr[-300:]) for s, o in zip(studies, outs, strict=True) if o.returncode != 0]
        assert not failed, f"{len(failed)} of {len(studies)} stops not confirmed: {failed}"
        for study, out in zip(studies, outs, strict=True):
            (line,) = out.stdout.splitlines()[1:]
            assert line.split()[:1] == [f"{study}-long"] and "stopped" in line, out.stdout
        problems = await stop_all(replicas)
    finally:
        cluster.kill_all()
    results, p1 = await read_to_end(kafka_bootstrap, cluster.settings.topics.results)
    ledger, p2 = await read_to_end(kafka_bootstrap, cluster.settings.topics.ledger)
    history = History.of(
        results=results,
        ledger=ledger,
        executions=executions.all(),
        wanted={(s, f"{s}-long") for s in studies},
    )
    counts, found = problems_of(history, faults=[])
    print(counts.line("stops_across_replicas"))
    found += [p for p in (p1, p2) if p] + problems
    found += [f"{s}: not stopped" for s, st in history.statuses().items() if st != "stopped"]
    assert not found, "\n".join(found)
    assert {partition_of(s.encode()) for s in studies} == {0, 1, 2, 3}


async def _publish_long_runs(cluster: Cluster, studies: list[str], gate: Path) -> None:
    """One long run per study, each message keyed by its study (as every producer of suggestions does)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    await producer.start()
    try:
        for study in studies:
            name = f"{study}-long"
            body = {
                "schema": "bridge.suggestion/v1",
                "study": study,
                "template": "job",
                "suggestions": [{"id": name, "params": {"name": name, "wait_for": str(gate)}}],
            }
            await producer.send_and_wait(
                cluster.settings.topics.suggestions, json.dumps(body).encode(), key=study.encode()
            )
    finally:
        await producer.stop()
