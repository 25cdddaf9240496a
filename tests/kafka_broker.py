"""Pytest plugin: a real Apache Kafka broker for the tests that need one.

Loaded from tests/conftest.py (``pytest_plugins = ["tests.kafka_broker"]``). Fixtures:

- ``kafka_broker`` (session): the broker as a :class:`KafkaBroker`. Unless ``BRIDGE_KAFKA_BOOTSTRAP`` is set,
  the session starts its own broker with ``deploy/kafka/kafka.sh`` in a temporary dir on free ports (so a
  developer's ``make kafka-up`` on 9092 does not clash) and stops it at the end. With the variable set, that
  broker is used as it is and cannot be restarted (tests that restart it are skipped).
  Restarts keep the data: ``stop()``/``start()``/``kill()``, ``with kafka_broker.stopped(crash=False):``, or
  in async tests ``async with kafka_broker.outage(crash=False):``, which leaves the event loop running.
- ``kafka_bootstrap`` (session): ``"127.0.0.1:PORT"``, for ``bootstrap_servers=``.
- ``secure_kafka_broker`` (session): a second, secure broker (SASL_SSL with SCRAM-SHA-512, the StandardAuthorizer,
  deny by default; :class:`SecureKafkaBroker`), started only when a test asks for it.
- ``kafka_topic_factory`` (function): ``await kafka_topic_factory(partitions=3)`` makes a fresh uuid-named
  topic and waits until every partition has a leader; all of them are deleted after the test.

And a helper, :func:`read_topic`, that reads a topic from the beginning until a condition holds or a deadline.
Tests that need Kafka are marked ``@pytest.mark.kafka``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError
from aiokafka.helpers import create_ssl_context

from bridge.kafka.connection import wait_for_leaders

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "kafka.sh"
BOOTSTRAP_ENV = "BRIDGE_KAFKA_BOOTSTRAP"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


class KafkaBrokerError(RuntimeError):
    """The launcher could not start or stop the broker; the message carries its output and log tail."""


class KafkaBroker:
    """A single-node broker this test session owns: its own run dir and ports, started by kafka.sh.

    ``stop()`` then ``start()`` restarts it on the same log dir and ports, so data survives; ``up()``
    formats a fresh, empty one.
    """

    can_restart = True

    def __init__(self, run_dir: Path, port: int, controller_port: int, proxied: tuple[int, int] | None = None) -> None:
        self.run_dir = run_dir
        self.port = port
        self.controller_port = controller_port
        # A second listener (bound, advertised): the network fault tests' proxy listens on the advertised port
        # and forwards to the bound one (tests/faults/proxy.py).
        self.proxied = proxied

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the client listener."""
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        """Format a fresh log dir and start the broker; returns once a client can list topics."""
        self._run("up", timeout=START_TIMEOUT_S + 120)  # first use may fetch the jars with Maven

    def start(self) -> None:
        """Start the stopped broker again on its existing data; returns once it is ready."""
        self._run("start", timeout=START_TIMEOUT_S + 30)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after a grace period), keeping its data."""
        self._run("down", timeout=STOP_TIMEOUT_S + 30)

    def kill(self) -> None:
        """Crash the broker: SIGKILL, no clean shutdown. Its data stays for ``start()`` to recover."""
        self._run("kill", timeout=STOP_TIMEOUT_S + 30)

    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._run("status", timeout=10, check=False).returncode == 0

    @contextlib.contextmanager
    def stopped(self, *, crash: bool = False) -> Iterator[None]:
        """Keep the broker down inside the block (``crash=True``: SIGKILL it instead of a clean stop).

        It is started again on leaving the block, even when the block fails.
        """
        if crash:
            self.kill()
        else:
            self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.asynccontextmanager
    async def outage(self, *, crash: bool = False) -> AsyncIterator[None]:
        """``stopped()`` for async tests: the stop and the restart run in a thread, so the event loop (and
        any client or bridge on it) keeps running while the broker is down and while it comes back."""
        await asyncio.to_thread(self.kill if crash else self.stop)
        try:
            yield
        finally:
            await asyncio.to_thread(self.start)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """SIGSTOP the broker inside the block: the kernel still accepts its connections, and nothing answers
        them. SIGCONT on leaving the block, even when the block fails."""
        pid = int((self.run_dir / "kafka.pid").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def _env(self) -> dict[str, str]:
        """kafka.sh's environment: this broker's run dir, ports and timeouts."""
        return {
            **os.environ,
            "KAFKA_RUN_DIR": str(self.run_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            **(
                {"KAFKA_PROXIED_PORT": str(self.proxied[0]), "KAFKA_PROXIED_ADVERTISED_PORT": str(self.proxied[1])}
                if self.proxied
                else {}
            ),
            "KAFKA_START_TIMEOUT": str(START_TIMEOUT_S),
            "KAFKA_STOP_TIMEOUT": str(STOP_TIMEOUT_S),
        }

    def _run(self, command: str, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self._env()
        try:
            done = subprocess.run(
                ["bash", str(KAFKA_SH), command, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError(f"kafka.sh {command} took longer than {timeout}s") from exc
        if check and done.returncode != 0:
            raise KafkaBrokerError(
                f"kafka.sh {command} failed (exit {done.returncode}), run dir {self.run_dir}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done


class ExternalKafkaBroker:
    """A broker named by ``BRIDGE_KAFKA_BOOTSTRAP``: used as it is, never started, stopped or restarted."""

    can_restart = False
    proxied: tuple[int, int] | None = None  # no listener of ours to put a proxy in front of

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def start(self) -> None:
        """Skip the test: this session does not own the broker."""
        self._skip()

    def stop(self) -> None:
        """Skip the test: this session does not own the broker."""
        self._skip()

    def kill(self) -> None:
        """Skip the test: this session does not own the broker."""
        self._skip()

    def is_running(self) -> bool:
        """Skip the test: this session does not own the broker."""
        self._skip()
        return True  # pragma: no cover - _skip raises

    @contextlib.contextmanager
    def stopped(self, *, crash: bool = False) -> Iterator[None]:
        """Skip the test: this session does not own the broker."""
        self._skip()
        yield  # pragma: no cover - _skip raises

    @contextlib.asynccontextmanager
    async def outage(self, *, crash: bool = False) -> AsyncIterator[None]:
        """Skip the test: this session does not own the broker."""
        self._skip()
        yield  # pragma: no cover - _skip raises

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Skip the test: this session does not own the broker."""
        self._skip()
        yield  # pragma: no cover - _skip raises

    def _skip(self) -> None:
        pytest.skip(f"restarting the broker needs one the session starts itself; {BOOTSTRAP_ENV} is set")


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 and outside the kernel's ephemeral range.

    Outside it, because a client's outgoing socket (or a client reconnecting to the stopped broker, which can
    connect to itself) takes its local port from that range and would then hold the broker's port.
    """
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    pool = list(range(20000, low)) if low > 21000 else list(range(high + 1, 65536))
    random.shuffle(pool)
    ports: list[int] = []
    for port in pool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports outside the ephemeral range {low}-{high}")


SERVER_LOGS: dict[str, Path] = {}
"""The server.log of each broker this session started, by bootstrap: a failing test quotes what the broker said
of its group (`broker_log_about`)."""


def broker_log_about(bootstrap: str, needle: str, lines: int = 40) -> str:
    """The last `lines` lines of the session broker's server.log that mention `needle` (a group id)."""
    path = SERVER_LOGS.get(bootstrap)
    if path is None or not path.exists():
        return "(no broker log: an external broker)"
    found = [line for line in path.read_text(errors="replace").splitlines() if needle in line]
    return "\n".join(found[-lines:]) or f"(the broker's log never mentions {needle})"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker | ExternalKafkaBroker]:
    """The session's Kafka broker (see the module docstring)."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield ExternalKafkaBroker(external)
        return
    port, controller_port, proxied, proxy = _free_ports(4)
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port, controller_port, proxied=(proxied, proxy))
    SERVER_LOGS[broker.bootstrap] = broker.run_dir / "logs" / "server.log"
    try:
        broker.up()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker | ExternalKafkaBroker) -> str:
    """``"host:port"`` of the session's broker."""
    return kafka_broker.bootstrap


SECURE_USERS = ("admin", "bridge", "optimizer", "intruder")
"""The secure broker's SCRAM users; the first is its super user (see deploy/kafka/ACLS.md for the others)."""


class SecureKafkaBroker(KafkaBroker):
    """A single-node broker with one SASL_SSL listener (SCRAM-SHA-512 over TLS) and the StandardAuthorizer,
    deny by default: ``admin`` is a super user, every other user gets only what ACLs grant.

    Its CA and certificate are made for this session by ``kafka.sh certs`` (openssl), its users' passwords
    are random; both live in ``secure_dir`` and are gone with the session's temporary directory.
    """

    def __init__(self, run_dir: Path, port: int, controller_port: int, secure_dir: Path) -> None:
        super().__init__(run_dir, port, controller_port)
        self.secure_dir = secure_dir
        self.passwords = {user: secrets.token_urlsafe(18) for user in SECURE_USERS}

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that signed the broker's certificate: what clients trust."""
        return self.secure_dir / "ca.pem"

    def up(self) -> None:
        """Make the CA, the broker's certificate and the users file, then format and start the broker."""
        self._run("certs", str(self.secure_dir), timeout=60)
        users = self.secure_dir / "users"
        users.touch(mode=0o600)
        users.write_text("".join(f"{user} {password}\n" for user, password in self.passwords.items()))
        super().up()

    def client_kwargs(self, user: str) -> dict[str, Any]:
        """What an aiokafka client acting as `user` is constructed with."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user],
            "ssl_context": create_ssl_context(cafile=str(self.ca_file)),
        }

    def tool(self, name: str, *args: str, timeout: float = 60) -> str:
        """Run ``kafka.sh tool NAME ARGS...`` as the admin (``acls``, ``topics``, ...); returns its output."""
        return self._run("tool", name, *args, timeout=timeout).stdout

    def _env(self) -> dict[str, str]:
        return {**super()._env(), "KAFKA_SECURE_DIR": str(self.secure_dir)}


@pytest.fixture(scope="session")
def secure_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaBroker]:
    """The session's secure broker (SASL_SSL, SCRAM, ACLs), started on first use.

    Always one this session starts itself, even with ``BRIDGE_KAFKA_BOOTSTRAP`` set: its users, certificates
    and authorizer are part of what the tests check. Starting it takes about 4 s.
    """
    port, controller_port = _free_ports(2)
    root = tmp_path_factory.mktemp("kafka-secure")
    broker = SecureKafkaBroker(root / "run", port, controller_port, root / "tls")
    try:
        broker.up()
        yield broker
    finally:
        broker.stop()


class TopicFactory:
    """Makes fresh uuid-named topics on one broker and deletes them all on ``close()``."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin: AIOKafkaAdminClient | None = None
        self.created: list[str] = []

    async def __call__(
        self,
        partitions: int = 1,
        *,
        prefix: str = "test",
        configs: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> str:
        """Create a topic named ``{prefix}-{uuid}`` with ``partitions`` partitions and return its name."""
        admin = await self._admin_client()
        name = f"{prefix}-{uuid.uuid4().hex}"
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(configs or {}))],
            timeout_ms=int(timeout_s * 1000),
        )
        for _topic, code, message in response.topic_errors:
            if code != 0:
                raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
        self.created.append(name)
        await wait_for_leaders(admin, {name: partitions}, timeout_s=timeout_s)
        return name

    async def close(self) -> None:
        """Delete every topic this factory made."""
        if self._admin is None:
            return
        try:
            if self.created:
                with contextlib.suppress(UnknownTopicOrPartitionError):
                    await self._admin.delete_topics(self.created)
        finally:
            await self._admin.close()
            self._admin = None

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            await admin.start()
            self._admin = admin
        return self._admin


@pytest_asyncio.fixture
async def kafka_topic_factory(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """``await kafka_topic_factory(partitions=N)`` -> a fresh topic name; deleted after the test."""
    factory = TopicFactory(kafka_bootstrap)
    try:
        yield factory
    finally:
        await factory.close()


async def read_topic(
    bootstrap: str,
    topics: str | Sequence[str],
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
    timeout_s: float = 30.0,
    client: Mapping[str, Any] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read whole topics from the beginning, without a consumer group, until ``until(records)`` is true.

    Records come in partition order within each partition. Raises ``TimeoutError`` (with what was read) when
    the condition does not hold by the deadline. ``client``: how to connect instead of plainly to
    ``bootstrap`` (``SecureKafkaBroker.client_kwargs(user)``).
    """
    names = [topics] if isinstance(topics, str) else list(topics)
    # Without a group, a subscription is given every partition of the topics and starts at auto_offset_reset.
    consumer = AIOKafkaConsumer(
        *names,
        **(client or {"bootstrap_servers": bootstrap}),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while not until(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"condition unmet after {timeout_s}s; read {len(records)} records, last: {records[-10:]}"
                )
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


async def wait_until_groups_form(bootstrap: str, *, timeout_s: float = 180.0) -> float:
    """Return once a new consumer group can form on a new topic (its one member assigned the topic's partition):
    after a broker was paused, its controller fences it and group coordinators move, and a group formed meanwhile
    can wait minutes for its partitions. Returns the seconds it took."""
    began = time.monotonic()
    topic = f"probe-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    while True:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-group")
        await consumer.start()
        try:
            deadline = time.monotonic() + 20
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=500)
            if consumer.assignment():
                return time.monotonic() - began
        finally:
            await consumer.stop()
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"no consumer group could form in {timeout_s:g} s after the broker's pause")
