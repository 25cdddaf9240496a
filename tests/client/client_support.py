"""What the client's tests share: fresh topics on the session's broker, results published there as the bridge
would publish them, and `bridge serve` as a process of its own."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridge.config.sections import TopicsSettings
from bridge.contract.results import RunResult, RunStatus
from bridge.kafka.connection import wait_for_leaders
from tests.kafka_broker import _free_ports
from tests.polling import eventually


async def fresh_topics(bootstrap: str, partitions: int = 4) -> TopicsSettings:
    """uuid-named topics, the results, dead-letter and suggestions ones created with `partitions` each."""
    topics = TopicsSettings(**{t: f"{t}-{uuid.uuid4().hex[:8]}" for t in TopicsSettings.model_fields})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = (topics.results, topics.dead_letters, topics.suggestions)
        await admin.create_topics([NewTopic(t, partitions, 1) for t in wanted])
        await wait_for_leaders(admin, dict.fromkeys(wanted, partitions), timeout_s=30)
    finally:
        await admin.close()
    return topics


def result(study: str, suggestion_id: str, loss: float = 0.5) -> RunResult:
    """A succeeded run's final result, as the bridge publishes it."""
    return RunResult.model_validate(
        {
            "study": study,
            "template": "job",
            "operation_id": f"op-{study}",
            "run_id": f"run-{study}-{suggestion_id}",
            "suggestion_id": suggestion_id,
            "index": 0,
            "params": {},
            "status": RunStatus.SUCCEEDED,
            "outputs": {"loss": loss},
        }
    )


async def publish(bootstrap: str, topic: str, results: Iterable[RunResult]) -> None:
    """Publish results keyed by study (one study to one partition), all at once, then wait for the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for r in results:
            await producer.send(topic, r.to_json().encode(), key=(r.study or "").encode())
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def serve_process(config: Path, root: Path) -> AsyncIterator[None]:
    """`bridge serve -c config` as its own process until the block ends (then SIGTERM, and its drain)."""
    (port,) = _free_ports(1)
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "-c", str(config), "--http-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        try:

            def ready() -> bool:
                assert proc.poll() is None, f"bridge serve exited:\n{log.read_text(errors='replace')[-3000:]}"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                        return bool(response.status == 200)
                except OSError:
                    return False

            await eventually(ready, timeout=60, interval=0.1, in_thread=True, what="bridge serve never ready")
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
