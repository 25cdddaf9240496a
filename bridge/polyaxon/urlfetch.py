"""Fetch a `urlRef` component over http(s) without letting the URL's writer reach inside the network or hold on.

- One deadline for the whole fetch (resolving, connecting, TLS, headers, body, redirects), enforced by a watchdog
  that shuts the socket: a per-socket timeout lets a server that sends a byte a second hold a fetch forever.
- The host is resolved once and the connection goes to the address that was checked, so a second DNS answer
  cannot swap in another one; every redirect hop is checked the same way.
- Loopback, private, link-local, multicast, reserved and unspecified addresses (IPv4, IPv6, and IPv4 inside IPv6)
  are refused unless the host or its network is in `UrlPolicy.allow_hosts`, or the policy is `trusted()` (a file
  given to `bridge run -f` by the person running it).
- An error names the URL, the status and why, never anything the server sent (body, headers, reason phrase):
  what an internal service answers must not come back in a dead letter.

`fetch_url` blocks; it keeps no shared state, so several threads may fetch at once.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urljoin, urlsplit

__all__ = ["Connector", "FetchRefused", "Resolver", "UrlPolicy", "fetch"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[IPAddress]]
"""(host, port) -> its addresses; raises OSError when the host does not resolve."""
Connector = Callable[[IPAddress, int, float], socket.socket]
"""(address, port, timeout_s) -> a connected TCP socket."""

_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class FetchRefused(Exception):
    """Why a URL was not fetched, in words that hold nothing the server sent."""


@dataclass(frozen=True)
class UrlPolicy:
    """Where a `urlRef` may be fetched from, for how long and how much.

    `allow_hosts` lists host names (`components.internal`) and addresses or networks (`10.1.2.3`, `10.0.0.0/8`,
    `fd00::/8`) that may be reached although internal. `trusted()` allows every address.
    """

    allow_hosts: Sequence[str] = ()
    timeout_s: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow_internal: bool = False
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allow_hosts:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.add(_normal_host(entry))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))
        if not self.timeout_s > 0 or self.max_bytes < 1 or self.max_redirects < 0:
            raise ValueError(f"invalid url policy: {self}")

    @classmethod
    def trusted(cls, *, timeout_s: float = 10.0, max_bytes: int = 5 * 1024 * 1024) -> UrlPolicy:
        """Any address, loopback and private included: for files given by the person running the bridge."""
        return cls(timeout_s=timeout_s, max_bytes=max_bytes, allow_internal=True)

    def permits(self, host: str, address: IPAddress) -> bool:
        """True when `address` (which `host` resolved to) may be connected to."""
        if self.allow_internal or not is_internal(address):
            return True
        if _normal_host(host) in self._names:
            return True
        return any(address.version == net.version and address in net for net in self._networks)


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def is_internal(address: IPAddress) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified or otherwise not globally routable; an IPv6
    address that carries an IPv4 one (mapped, NAT64, 6to4, Teredo) is judged by that one too."""
    if not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return any(v4 is not None and is_internal(v4) for v4 in embedded)
    return False


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the system resolver, in its order, without repeats."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def tcp_connector(address: IPAddress, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to exactly `address` (no name lookup happens here)."""
    return socket.create_connection((str(address), port), timeout=timeout_s)


class _Watchdog:
    """Shuts a socket down at the deadline, which ends whatever read or write is blocked on it."""

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shut(sock)

    def _cut(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                self._shut(self._sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # The plain socket's shutdown, also for a TLS socket: no TLS close handshake with a stalling peer.
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def fetch(
    url: str,
    policy: UrlPolicy,
    *,
    resolver: Resolver | None = None,
    connector: Connector | None = None,
) -> bytes:
    """GET `url` under `policy`, following redirects it allows; the body, or FetchRefused saying why not."""
    deadline = time.monotonic() + policy.timeout_s
    current = url
    for _ in range(policy.max_redirects + 1):
        _, location, body = _get(current, policy, deadline, resolver or system_resolver, connector or tcp_connector)
        if location is None:
            return body
        current = urljoin(current, location)
    raise FetchRefused(f"more than {policy.max_redirects} redirects")


def _get(
    url: str, policy: UrlPolicy, deadline: float, resolve: Resolver, connect: Connector
) -> tuple[int, str | None, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefused("only http:// and https:// URLs are fetched")
    host, port = _host_port(parts)
    address = _checked_address(host, port, policy, resolve)
    watchdog = _Watchdog(deadline)
    timed_out = FetchRefused(f"timed out after {policy.timeout_s:g} s")
    try:
        answer = _exchange(
            parts=parts,
            host=host,
            port=port,
            address=address,
            policy=policy,
            deadline=deadline,
            connect=connect,
            watchdog=watchdog,
        )
    except FetchRefused:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if watchdog.fired or time.monotonic() >= deadline:
            raise timed_out from exc
        raise FetchRefused(_describe(exc)) from exc
    finally:
        watchdog.cancel()
    if watchdog.fired:  # the cut can look like a server that closed early: what was read is not the answer
        raise timed_out
    return answer


def _host_port(parts: SplitResult) -> tuple[str, int]:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FetchRefused("the URL's port is not valid") from exc
    if not parts.hostname:
        raise FetchRefused("the URL names no host")
    return parts.hostname, port


def _checked_address(host: str, port: int, policy: UrlPolicy, resolve: Resolver) -> IPAddress:
    """The first address of `host` the policy permits; refused before any connection when there is none."""
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise FetchRefused(f"the host {host} does not resolve") from exc
    if not addresses:
        raise FetchRefused(f"the host {host} does not resolve")
    for address in addresses:
        if policy.permits(host, address):
            return address
    raise FetchRefused(
        f"{host} is an internal address ({addresses[0]}: loopback, private, link-local or reserved), "
        "refused unless allow-listed (inline.allow_hosts)"
    )


def _exchange(
    *,
    parts: SplitResult,
    host: str,
    port: int,
    address: IPAddress,
    policy: UrlPolicy,
    deadline: float,
    connect: Connector,
    watchdog: _Watchdog,
) -> tuple[int, str | None, bytes]:
    # http.client speaks HTTP over a socket already connected to the checked address; Host and SNI keep the name.
    conn = http.client.HTTPConnection(host, port, timeout=policy.timeout_s)
    try:
        conn.sock = connect(address, port, max(deadline - time.monotonic(), 0.001))
        watchdog.watch(conn.sock)
        if parts.scheme == "https":
            conn.sock = ssl.create_default_context().wrap_socket(conn.sock, server_hostname=host)
            watchdog.watch(conn.sock)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": "suggestion-bridge", "Accept": "*/*"})
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise FetchRefused(f"HTTP {response.status} without a Location")
            return response.status, location, b""
        if response.status != 200:
            raise FetchRefused(f"HTTP {response.status}")
        return response.status, None, _read_body(response, policy.max_bytes)
    finally:
        conn.close()


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"it is larger than {max_bytes} bytes")
    body = bytearray()
    while chunk := response.read1(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise FetchRefused(f"it is larger than {max_bytes} bytes")
    return bytes(body)


def _describe(exc: BaseException) -> str:
    """Why a fetch failed, from this side only: an errno's text or the exception's kind, never its message, which
    can quote the server (a bad status line, a header)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, http.client.HTTPException):
        return f"the server's answer is not valid HTTP ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
