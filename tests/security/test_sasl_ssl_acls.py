"""Security end to end on a real broker: SASL_SSL with SCRAM-SHA-512, the KRaft StandardAuthorizer, deny by
default, and the ACLs of deploy/kafka/ACLS.md.

`bridge serve` runs as a process logging in as `bridge`; `optimizer` sends suggestions and reads results;
`intruder` may write suggestions, but not the ledger.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from bridge.client import BridgeClient
from bridge.contract.messages import LedgerRecord
from bridge.contract.results import RunResult
from tests.faults.harness import Replica
from tests.kafka_broker import SecureKafkaBroker, read_topic
from tests.security.deployment import SecureDeployment, kafka_settings

# A second broker (TLS, SASL, ACLs) and a bridge start in this module's fixtures: longer than the default budget.
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

STUDY = "secure-study"


def _serve(bridge: Replica) -> None:
    bridge.start()
    asyncio.run(bridge.wait_ready(timeout=90))


def _shut_down(bridge: Replica) -> None:
    try:
        asyncio.run(bridge.terminate())
    finally:
        bridge.kill_if_alive()


def _env_dump_template(dump: Path) -> dict[str, Any]:
    """A template whose run writes its whole environment, as JSON, into `dump`."""
    return {
        "params": {"dump": {"value": str(dump)}},
        "matrix": {"kind": "mapping"},
        "component": {
            "kind": "component",
            "inputs": [{"name": "dump", "type": "str"}, {"name": "label", "type": "str"}],
            "run": {
                "kind": "job",
                "container": {
                    "image": "python:3.11",
                    "command": [
                        sys.executable,
                        "-c",
                        "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))",
                        "{{ dump }}",
                    ],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def deployment(
    secure_kafka_broker: SecureKafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureDeployment]:
    """The bridge with its password in `sasl_password_file`, serving the test job as `job` and `envdump`, whose
    run writes its environment to `run-environment.json` in the deployment's root."""
    root = tmp_path_factory.mktemp("secure-bridge")
    templates = {"envdump": _env_dump_template(root / "run-environment.json")}
    created = SecureDeployment.create(secure_kafka_broker, root, templates=templates, suggestion_writers=["intruder"])
    try:
        _serve(created.bridge)
        yield created
    finally:
        _shut_down(created.bridge)


async def _serve_one(
    deployment: SecureDeployment, suggestion_id: str, params: dict[str, Any], template: str = "job"
) -> RunResult:
    """Submit one suggestion of `template` as `optimizer` and return its result, read as `optimizer`."""
    kafka = kafka_settings(deployment.broker, "optimizer")
    async with BridgeClient(kafka=kafka, topics=deployment.settings.topics) as client:
        await client.submit(STUDY, template, [{"id": suggestion_id, "params": params}])
        return (await client.results(STUDY, [suggestion_id], timeout=60))[suggestion_id]


async def test_the_optimizer_is_served_through_tls_sasl_and_acls(deployment: SecureDeployment) -> None:
    result = await _serve_one(deployment, "t-secure-1", {"name": "secure-1", "values": "0.25"})

    assert result.status.value == "succeeded"
    assert result.outputs == {"loss": 0.25}


async def test_the_intruder_cannot_write_the_ledger_and_nothing_it_sent_runs(
    deployment: SecureDeployment, tmp_path: Path
) -> None:
    marker = tmp_path / "intruder-was-here"
    topics = deployment.settings.topics
    run_id = f"r-intruder-{uuid.uuid4().hex[:8]}"
    # A `received` record as the bridge itself writes one, its inline operation creating the marker file.
    forged = LedgerRecord(
        run_id=run_id,
        state="received",
        study=STUDY,
        template="job",
        suggestion_id="evil",
        operation={
            "version": 1.1,
            "kind": "operation",
            "matrix": {"kind": "mapping", "values": [{}]},
            "component": {
                "kind": "component",
                "run": {"kind": "job", "container": {"image": "x", "command": ["touch", str(marker)]}},
            },
        },
    )
    producer = AIOKafkaProducer(**deployment.broker.client_kwargs("intruder"), acks="all")
    await producer.start()
    try:
        # The intruder is a real, authenticated principal: the broker takes what its ACLs allow ...
        await producer.send_and_wait(topics.suggestions, b'{"study": "intruder"}', key=b"intruder")
        # ... and refuses the ledger.
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.ledger, forged.to_bytes(), key=run_id.encode(), partition=0)
    finally:
        await producer.stop()

    # A restart makes the bridge reconcile the whole ledger (one partition); a suggestion served afterwards
    # shows that reconciliation is over.
    assert await deployment.bridge.terminate() == 0, deployment.bridge.log_tail()
    deployment.bridge.start()
    await deployment.bridge.wait_ready(timeout=90)
    after = await _serve_one(deployment, "t-secure-after-restart", {"name": "after-restart"})
    assert after.status.value == "succeeded"

    assert not marker.exists(), "the intruder's operation ran"
    ledger = await read_topic(
        deployment.broker.bootstrap,
        topics.ledger,
        until=lambda rs: any(r.key == after.run_id.encode() and b'"finished"' in r.value for r in rs),
        client=deployment.broker.client_kwargs("admin"),
        timeout_s=30,
    )
    assert not [r for r in ledger if r.key == run_id.encode()], "the forged ledger record reached the ledger"


def test_the_password_is_in_no_log_line(deployment: SecureDeployment) -> None:
    log = deployment.bridge.log_path.read_text(errors="replace")

    assert "bridge_serving" in log  # the log is the serving bridge's, not an empty file
    assert deployment.password not in log


# ---- the password in the environment, as deploy/k8s provides it -------------------------------------------
# These come last in the module: their fixture stops the file-configured bridge and serves the same deployment
# (topics, group, ACLs) with a bridge given its password as `BRIDGE_KAFKA__SASL_PASSWORD`.


@pytest.fixture(scope="module")
def env_bridge(deployment: SecureDeployment) -> Iterator[Replica]:
    """The deployment's bridge, restarted with its password in the environment (deploy/k8s's `envFrom`)."""
    _shut_down(deployment.bridge)
    bridge = deployment.bridge_with_password_in_env()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BRIDGE_KAFKA__SASL_PASSWORD", deployment.password)
        _serve(bridge)  # the process takes the environment of this moment
    try:
        yield bridge
    finally:
        _shut_down(bridge)


@pytest.fixture(scope="module")
def env_run(deployment: SecureDeployment, env_bridge: Replica) -> dict[str, str]:
    """The environment a run of the env-configured bridge saw."""
    result = asyncio.run(_serve_one(deployment, "t-env", {"label": "env"}, template="envdump"))
    assert result.status.value == "succeeded", result
    environment: dict[str, str] = json.loads((deployment.bridge.root / "run-environment.json").read_text())
    return environment


def test_a_run_environment_holds_no_password(deployment: SecureDeployment, env_run: dict[str, str]) -> None:
    assert "BRIDGE_RUN_ID" in env_run  # the dump is a run's own environment
    assert not [name for name, value in env_run.items() if deployment.password in value], (
        "the bridge's Kafka password is in a run's environment"
    )
    assert not [name for name in env_run if name.startswith("BRIDGE_KAFKA")]


def test_the_password_from_the_environment_is_in_no_log_line(
    deployment: SecureDeployment, env_bridge: Replica, env_run: dict[str, str]
) -> None:
    log = env_bridge.log_path.read_text(errors="replace")

    assert "bridge_serving" in log
    assert deployment.password not in log
