"""A TCP proxy the network fault tests own, between one replica and the broker: the faults a network makes.

The kernel here has no `netem`, so the faults are made in user space. The session broker has a second listener
(`KafkaBroker.proxied_port`) that advertises this proxy's port: a replica bootstrapped at the proxy learns the
proxy's address from the broker's metadata and sends every connection through it, while every other client
(the other replicas, the study, the checker) talks to the broker directly.

The proxy forwards whole Kafka frames (a 4-byte size, then the request or response), so it can hold, delay,
reset or drop them one at a time:
- `cut()`: every open connection aborted, every new one aborted at once (the replica cut off);
- `silence()`: connections stay open and nothing is forwarded either way (a broker that answers nothing);
- `slow(delay_s, jitter_s)`: every frame waits `delay_s` +/- `jitter_s`, in order;
- `lossy(p)`: after forwarding a request, the connection is reset with probability `p` (mid-request);
- `lose_end_txn_answer()`: the next EndTxn request reaches the broker, its answer never comes back (the link
  dies in the middle of a transaction's commit);
- `heal()`: back to forwarding everything at once.
Randomness comes from the seed given, printed by the tests, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

END_TXN = 26  # Kafka's api key of EndTxn


@dataclass
class LinkState:
    """What the link does now, read by every frame as it passes."""

    cut: bool = False
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    delay_s: float = 0.0
    jitter_s: float = 0.0
    reset_p: float = 0.0
    lose_end_txn: int = 0  # EndTxn answers still to lose


@dataclass
class LinkCounts:
    """What the proxy did, for the test's report."""

    connections: int = 0
    aborted: int = 0
    resets: int = 0
    frames: int = 0
    end_txn_answers_lost: int = 0


class FaultyLink:
    """A proxy on 127.0.0.1:`port` to the broker's listener at 127.0.0.1:`upstream_port`."""

    def __init__(self, port: int, upstream_port: int, *, seed: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.state = LinkState()
        self.state.flowing.set()
        self.counts = LinkCounts()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- the faults ------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Abort every connection, and every new one as it comes."""
        self.state.cut = True
        self._abort_all()

    def silence(self) -> None:
        """Keep connections open and forward nothing."""
        self.state.flowing.clear()

    def slow(self, delay_s: float, jitter_s: float = 0.0) -> None:
        self.state.delay_s, self.state.jitter_s = delay_s, jitter_s

    def lossy(self, reset_p: float) -> None:
        self.state.reset_p = reset_p

    def lose_end_txn_answer(self, count: int = 1) -> None:
        self.state.lose_end_txn = count

    def heal(self) -> None:
        self.state.cut = False
        self.state.delay_s = self.state.jitter_s = self.state.reset_p = 0.0
        self.state.lose_end_txn = 0
        self.state.flowing.set()

    # ---- forwarding --------------------------------------------------------------------------------

    def _abort_all(self) -> None:
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
            self.counts.aborted += 1
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        if self.state.cut:
            writer.transport.abort()
            self.counts.aborted += 1
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        doomed: set[int] = set()  # correlation ids of EndTxn requests whose answers are to be lost

        def request(frame: bytes) -> bool:
            api_key, correlation = struct.unpack(">hxxi", frame[4:12])
            if api_key == END_TXN and self.state.lose_end_txn > 0:
                self.state.lose_end_txn -= 1
                doomed.add(correlation)
            self.counts.frames += 1
            return True

        def answer(frame: bytes) -> bool:
            (correlation,) = struct.unpack(">i", frame[4:8])
            if correlation in doomed:  # the commit reached the broker; its answer is lost with the link
                self.counts.end_txn_answers_lost += 1
                return False
            return True

        for pump in (
            self._pump(reader, up_writer, pair, request, requests=True),
            self._pump(up_reader, writer, pair, answer, requests=False),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        passes: Callable[[bytes], bool],
        *,
        requests: bool,
    ) -> None:
        """Forward frames one way until the connection ends or the link kills it: `passes` false, or (requests)
        a reset after the request went out."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                frame = await _frame(reader)
                await self._hold(delay=requests)
                if not passes(frame):
                    break
                writer.write(frame)
                await writer.drain()
                if requests and self.state.reset_p and self.rng.random() < self.state.reset_p:
                    self.counts.resets += 1
                    break
        self._close(pair)

    async def _hold(self, *, delay: bool) -> None:
        """A frame waits while the link is silent, and a request for its delay when the link is slow."""
        await self.state.flowing.wait()
        if delay and self.state.delay_s:
            jitter = self.rng.uniform(-self.state.jitter_s, self.state.jitter_s)
            await asyncio.sleep(max(0.0, self.state.delay_s + jitter))  # the fault itself: a slow link

    def _close(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        for writer in pair:
            writer.transport.abort()
        self._pairs.discard(pair)


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (size,) = struct.unpack(">i", head)
    return head + await reader.readexactly(size)
