"""Idle and stalled clients can neither starve the probes nor pile up (issue 7, item 8).

Kubernetes restarts a pod whose liveness probe is answered 503 or not at all, so a few hundred sockets that
anyone on the network can open must not change what `/healthz` says. They must not stay open forever either.
Server and clients share one event loop here: a server that blocked the loop on a silent socket would miss the
answer deadlines below.
"""

from __future__ import annotations

import asyncio

from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.telemetry import Telemetry

IDLE_CLIENTS = 200  # connect and send nothing
STALLED_CLIENTS = 20  # send half a request line, then nothing
ROUNDS = 5
ANSWER_WITHIN_S = 2.0
DEADLINE_S = 10.0  # a bound on waiting for the server, far above any expected answer time

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def status_of(port: int, path: str) -> int:
    """GET `path` on a connection of its own; the response's status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(response.split(b" ", 2)[1])


async def open_clients(port: int, count: int, first_bytes: bytes = b"") -> list[Connection]:
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    for _, writer in clients:
        writer.write(first_bytes)
        await writer.drain()
    return clients


async def close_all(clients: list[Connection]) -> None:
    for _, writer in clients:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in clients), return_exceptions=True)


async def test_probes_answer_200_while_hundreds_of_clients_sit_idle_or_stalled() -> None:
    health = Health()
    health.set_ready(True)
    # A long idle timeout, so the server cannot pass by dropping the idle clients before the probes run.
    async with HttpServer("127.0.0.1", 0, health, Telemetry(), idle_timeout_s=60.0) as server:
        idle = await open_clients(server.port, IDLE_CLIENTS)
        stalled = await open_clients(server.port, STALLED_CLIENTS, first_bytes=b"GET /heal")
        try:
            for _ in range(ROUNDS):
                for path in ("/healthz", "/readyz", "/metrics"):
                    async with asyncio.timeout(ANSWER_WITHIN_S):
                        assert await status_of(server.port, path) == 200, path

            still_open = [reader for reader, _ in idle + stalled if not reader.at_eof()]
            assert len(still_open) == IDLE_CLIENTS + STALLED_CLIENTS  # answered beside them, not instead
        finally:
            await close_all(idle + stalled)


async def test_idle_stalled_and_kept_alive_connections_are_all_closed_after_the_idle_timeout() -> None:
    idle_timeout_s = 1.0
    async with HttpServer("127.0.0.1", 0, Health(), Telemetry(), idle_timeout_s=idle_timeout_s) as server:
        loop = asyncio.get_running_loop()
        opened_at = loop.time()
        idle = await open_clients(server.port, IDLE_CLIENTS)
        stalled = await open_clients(server.port, STALLED_CLIENTS, first_bytes=b"GET /heal")
        kept_alive = await open_clients(
            server.port, STALLED_CLIENTS, first_bytes=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        clients = idle + stalled + kept_alive
        try:
            async with asyncio.timeout(DEADLINE_S):
                leftovers = await asyncio.gather(*(reader.read() for reader, _ in clients))
            closed_at = loop.time()
        finally:
            await close_all(clients)

    assert leftovers.count(b"") == IDLE_CLIENTS + STALLED_CLIENTS  # closed without an answer: they asked nothing
    answered = [data for data in leftovers if data]
    assert len(answered) == STALLED_CLIENTS
    assert all(data.startswith(b"HTTP/1.1 200 ") for data in answered)
    assert closed_at - opened_at >= idle_timeout_s * 0.9  # by the timeout, not refused at once
