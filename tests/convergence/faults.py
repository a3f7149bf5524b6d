"""Fault injectors that touch nothing shared: a TCP proxy in front of PostgreSQL that a
test can sever, and the common editing session of the fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import random

from tests.convergence.peers import ClientLoop, Peer
from tests.convergence.workload import Ledger
from tests.e2e.servers import free_port


class SeverableProxy:
    """127.0.0.1:port -> 127.0.0.1:target, on the peers' loop. `sever()` closes every
    connection and stops listening (new connections are refused); `restore()` listens
    again on the same port."""

    def __init__(self, loop: ClientLoop, target_port: int) -> None:
        self.loop = loop
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def start(self) -> None:
        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self.loop.run(listen())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def sever(self) -> None:
        async def cut() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
            await self._server.wait_closed()

        self.loop.run(cut())

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.sever()


def edit_burst(peers: list[Peer], ledger: Ledger, rng: random.Random, edits: int) -> None:
    """`edits` workload edits by each peer, interleaved."""
    for _ in range(edits):
        for peer in peers:
            peer.edit(ledger.op_for(rng, peer.name))
