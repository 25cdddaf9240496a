"""A urlRef from an inline operation cannot hold the bridge, reach inside the network, or leak what it reached.

No traffic goes to a private range from these tests: such URLs are refused before any connection, which a
connector stub that records every call proves.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from bridge.errors import PolyaxonfileError
from bridge.polyaxon import ComponentFetchFailed, UrlPolicy, parse_operation
from bridge.polyaxon.loader import fetch_url
from bridge.polyaxon.urlfetch import IPAddress, tcp_connector

SECRET = "s3cr3t-7f1e"


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that answers each connection with `answer(conn)`; counts connections."""

    answer: Callable[[socket.socket], None]
    connections: int = 0
    url: str = ""
    _sock: socket.socket = field(default_factory=socket.socket)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request; its content does not matter
            with contextlib.suppress(OSError):  # the client went away, which is what the deadline tests want
                self.answer(conn)

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        """Send `data` a byte every 50 ms until done or stopped."""
        for byte in data:
            if self._stop.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[RawServer, socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[RawServer, socket.socket], None]) -> RawServer:
        server = RawServer(answer=lambda conn: answer(server, conn))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def slow_body(server: RawServer, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    server.trickle(conn, b"#" * 100_000)


def slow_headers(server: RawServer, conn: socket.socket) -> None:
    server.trickle(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100_000)


def test_a_loopback_url_is_refused_at_once_by_default(serve: Callable[..., RawServer]) -> None:
    server = serve(slow_body)
    started = time.monotonic()

    with pytest.raises(ComponentFetchFailed, match="internal address") as caught:
        parse_operation({"kind": "operation", "urlRef": f"{server.url}/c.yaml"}, source="message", base_dir=None)

    assert time.monotonic() - started < 1
    assert server.connections == 0
    assert caught.value.path == "urlRef"


@pytest.mark.parametrize("answer", [slow_body, slow_headers], ids=["body", "headers"])
def test_a_server_that_trickles_is_cut_at_the_total_deadline(
    serve: Callable[..., RawServer], answer: Callable[[RawServer, socket.socket], None]
) -> None:
    server = serve(answer)
    policy = UrlPolicy(allow_hosts=["127.0.0.1"], timeout_s=1.0)
    started = time.monotonic()

    with pytest.raises(ComponentFetchFailed, match=r"timed out after 1 s$"):
        fetch_url(f"{server.url}/c.yaml", source="message", policy=policy)

    # Each byte comes well within any per-read timeout; only a deadline on the whole fetch stops this.
    assert time.monotonic() - started < 2
    assert server.connections == 1


def secret_answer(status: str, body: str) -> Callable[[RawServer, socket.socket], None]:
    def answer(server: RawServer, conn: socket.socket) -> None:
        payload = body.encode()
        head = f"HTTP/1.1 {status}\r\nX-Token: {SECRET}\r\nContent-Length: {len(payload)}\r\n\r\n"
        conn.sendall(head.encode() + payload)

    return answer


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (f"500 {SECRET}", f"internal error, token={SECRET}"),
        (f"403 {SECRET}", SECRET),
        ("200 OK", f"password: {SECRET}\n{SECRET}: 1\n"),
        ("200 OK", f"{{{SECRET}"),
        ("200 OK", f"kind: component\nrun: {{kind: job, container: {{image: x, command: [{SECRET}]}}}}\n{SECRET}: 1\n"),
        (f"HTTP/9 {SECRET}", ""),
    ],
    ids=["500", "403", "yaml-mapping", "bad-yaml", "bad-component", "bad-status"],
)
def test_nothing_the_server_sends_is_echoed_in_the_error(
    serve: Callable[..., RawServer], status: str, body: str
) -> None:
    server = serve(secret_answer(status, body))
    url = f"{server.url}/c.yaml"
    policy = UrlPolicy(allow_hosts=["127.0.0.1"])

    with pytest.raises(PolyaxonfileError) as caught:
        parse_operation({"kind": "operation", "urlRef": url}, source="message", base_dir=None, url_policy=policy)

    assert SECRET not in str(caught.value)
    assert all(SECRET not in p.message and SECRET not in p.path for p in caught.value.problems)
    assert url in str(caught.value)


@dataclass
class RecordingNetwork:
    """A resolver answering from a table and a connector that records each call and connects nowhere."""

    names: dict[str, list[str]] = field(default_factory=dict)
    connected: list[tuple[IPAddress, int]] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in self.names.get(host, [host])]

    def connect(self, address: IPAddress, port: int, timeout_s: float) -> socket.socket:
        self.connected.append((address, port))
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
    ],
)
def test_internal_addresses_are_refused_before_any_connection(host: str) -> None:
    network = RecordingNetwork()
    literal = f"[{host}]" if ":" in host else host

    with pytest.raises(ComponentFetchFailed, match="internal address"):
        fetch_url(f"http://{literal}/c.yaml", source="m", resolver=network.resolve, connector=network.connect)

    assert network.connected == []


def test_a_name_that_resolves_inside_is_refused_and_an_allowed_one_is_pinned_to_the_checked_address() -> None:
    network = RecordingNetwork(names={"components.example.com": ["10.0.0.1"]})
    url = "http://components.example.com:8080/c.yaml"

    with pytest.raises(ComponentFetchFailed, match=r"components\.example\.com is an internal address"):
        fetch_url(url, source="m", resolver=network.resolve, connector=network.connect)
    assert network.connected == []

    for allowed in (["10.0.0.0/8"], ["Components.Example.com"]):
        policy = UrlPolicy(allow_hosts=allowed)
        with pytest.raises(ComponentFetchFailed, match="Connection refused"):
            fetch_url(url, source="m", policy=policy, resolver=network.resolve, connector=network.connect)
    # The connection goes to the address that was checked, never through a second lookup.
    assert network.connected == [(ipaddress.ip_address("10.0.0.1"), 8080)] * 2


def test_a_public_address_is_fetched_when_nothing_is_allow_listed() -> None:
    network = RecordingNetwork(names={"example.org": ["93.184.215.14"]})

    with pytest.raises(ComponentFetchFailed, match="Connection refused"):
        fetch_url("https://example.org/c.yaml", source="m", resolver=network.resolve, connector=network.connect)

    assert network.connected == [(ipaddress.ip_address("93.184.215.14"), 443)]


def test_every_redirect_hop_is_checked(serve: Callable[..., RawServer]) -> None:
    def redirect(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/c.yaml\r\nContent-Length: 0\r\n\r\n")

    server = serve(redirect)
    hops: list[IPAddress] = []

    def connect(address: IPAddress, port: int, timeout_s: float) -> socket.socket:
        hops.append(address)
        return tcp_connector(address, port, timeout_s)

    with pytest.raises(ComponentFetchFailed, match=r"10\.0\.0\.1 is an internal address"):
        fetch_url(f"{server.url}/c.yaml", source="m", policy=UrlPolicy(allow_hosts=["127.0.0.1"]), connector=connect)

    assert hops == [ipaddress.ip_address("127.0.0.1")]
