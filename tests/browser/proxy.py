"""A loopback TCP proxy in front of the server, one per browser context, that a test can
sever. Chromium's offline emulation only pauses an open WebSocket (Playwright issue 4910);
closing the TCP connections makes the browser see a real disconnect."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

HEAD_LIMIT = 64 * 1024


class LoopbackProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`.

    `sever()` aborts every open connection and refuses WebSocket upgrades until
    `restore()`; plain HTTP keeps flowing, so a page can still be reloaded while its
    realtime connection is down (a full network outage would need a service worker)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.severed = False
        self.websockets_opened = 0
        self.websockets_refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def sever(self) -> None:
        self.severed = True
        self._call(self._abort_all())

    def restore(self) -> None:
        self.severed = False

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._abort_all())
            self._call(self._cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coroutine: object) -> object:
        future: Future[object] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(10)

    async def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _cancel_tasks(self) -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_writer.transport.abort()
            return
        is_websocket = b"upgrade: websocket" in head.lower()
        if is_websocket and self.severed:
            self.websockets_refused += 1
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        if is_websocket:
            self.websockets_opened += 1
        self._writers.update((client_writer, upstream_writer))
        upstream_writer.write(head)
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
        )
        self._writers.difference_update((client_writer, upstream_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(HEAD_LIMIT):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            # One direction ending ends both: a half-open proxy would hide a disconnect.
            writer.transport.abort()
