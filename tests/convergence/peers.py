"""Clients of the convergence suite: each holds one document that outlives its sockets.

A peer goes offline (its socket is closed), keeps editing its own document, and comes
back, to the same or another server process, where the y-websocket handshake (step 1 /
step 2 both ways) exchanges whatever each side lacks: exactly what a browser tab that
lost its network does. Two kinds share one interface:

- `PyPeer`: a pycrdt `Doc` on a `websockets` socket. The framing is written here, not
  imported from `collab.protocol`, so that a framing bug cannot hide on both sides. It
  runs on `ClientLoop`, an asyncio loop in a background thread, so that the tests stay
  synchronous (Django's database calls, Node's blocking pipes) while sockets keep flowing.
- `NodePeer`: a stock y-websocket `WebsocketProvider` in Node (converge_client.mjs).

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from pycrdt import Doc, TransactionEvent, write_var_uint
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.convergence import workload
from tests.e2e.servers import ARTIFACTS, ROOT, ServerProcess

T = TypeVar("T")

SYNC, AWARENESS, AUTH, QUERY_AWARENESS, SAVED, TITLE = 0, 1, 2, 3, 100, 101
STEP1, STEP2, UPDATE = 0, 1, 2
EMPTY_UPDATE = b"\x00\x00"


class ClientLoop:
    """An asyncio loop in a daemon thread; `run()` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="peers", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def call(self, function: Callable[[], T], timeout: float = 30.0) -> T:
        """Run a plain function on the loop's thread (pycrdt docs stay on one thread)."""

        async def wrapper() -> T:
            return function()

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


# Framing (y-protocols)


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(data, pos)
    return data[pos : pos + length], pos + length


def sync_frame(step: int, payload: bytes) -> bytes:
    return write_var_uint(SYNC) + write_var_uint(step) + write_var_uint(len(payload)) + payload


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    count, pos = read_var_uint(state_vector, 0)
    clocks = {}
    for _ in range(count):
        client_id, pos = read_var_uint(state_vector, pos)
        clocks[client_id], pos = read_var_uint(state_vector, pos)
    return clocks


class Peer:
    """What the tests use of either kind of client."""

    name: str
    server: ServerProcess | None = None

    def connect(self, server: ServerProcess, room: str, cookie: str) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

    def edit(self, op: dict[str, Any]) -> None:
        raise NotImplementedError

    def snapshot(self) -> tuple[bytes, dict[int, int]]:
        """The peer's whole document as one update, and its state vector."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def online(self) -> bool:
        return self.server is not None


class PySocket:
    """One socket of a `PyPeer`: handshake, updates both ways, "saved" notices."""

    def __init__(self, ws: ClientConnection, doc: Doc) -> None:
        self.ws = ws
        self.doc = doc
        self.synced = asyncio.Event()
        self.writes_sent = 0
        self.saved = 0
        self.saved_history: list[tuple[float, int]] = []
        self.close_code: int | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._applying_remote = False
        self._subscription = doc.observe(self._on_transaction)
        self._reader = asyncio.ensure_future(self._read_forever())
        self._writer = asyncio.ensure_future(self._write_forever())
        self._outgoing.put_nowait(sync_frame(STEP1, doc.get_state()))

    def _on_transaction(self, event: TransactionEvent) -> None:
        if not self._applying_remote and event.update != EMPTY_UPDATE:
            self._outgoing.put_nowait(sync_frame(UPDATE, event.update))

    async def _write_forever(self) -> None:
        while True:
            frame = await self._outgoing.get()
            if frame[0] == SYNC and frame[1] in (STEP2, UPDATE):
                self.writes_sent += 1
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return
            finally:
                self._outgoing.task_done()

    async def _read_forever(self) -> None:
        try:
            async for message in self.ws:
                assert isinstance(message, bytes), "text frame from the server"
                self._handle(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code or 1006

    def _handle(self, message: bytes) -> None:
        kind, pos = read_var_uint(message, 0)
        if kind == SYNC:
            step, pos = read_var_uint(message, pos)
            payload, _ = read_var_bytes(message, pos)
            if step == STEP1:
                self._outgoing.put_nowait(sync_frame(STEP2, self.doc.get_update(payload)))
                return
            self._applying_remote = True
            try:
                self.doc.apply_update(payload)
            finally:
                self._applying_remote = False
            if step == STEP2:
                self.synced.set()
        elif kind == SAVED:
            self.saved, _ = read_var_uint(message, pos)
            self.saved_history.append((time.monotonic(), self.saved))

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued frame was handed to the socket."""
        await asyncio.wait_for(self._outgoing.join(), timeout)

    async def close(self) -> None:
        self.doc.unobserve(self._subscription)
        self._writer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        await asyncio.gather(self._reader, self._writer, return_exceptions=True)


class PyPeer(Peer):
    def __init__(self, name: str, loop: ClientLoop, *, extensions: bool = False) -> None:
        self.name = name
        self.loop = loop
        self.extensions = extensions
        self.doc: Doc = loop.call(Doc)
        loop.call(lambda: workload.declare_roots(self.doc))
        self.socket: PySocket | None = None

    def connect(self, server: ServerProcess, room: str, cookie: str, timeout: float = 10) -> None:
        assert self.socket is None, f"{self.name} is connected already"
        url = f"{server.ws_url}/{room}" + ("?extensions=1" if self.extensions else "")

        async def open_socket() -> PySocket:
            ws = await connect(
                url,
                origin=server.http_url,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
                compression=None,
                max_size=None,
                proxy=None,
                ping_interval=None,
                open_timeout=timeout,
                close_timeout=2,
            )
            socket = PySocket(ws, self.doc)
            await asyncio.wait_for(socket.synced.wait(), timeout)
            return socket

        self.socket = self.loop.run(open_socket(), timeout + 5)
        self.server = server

    def disconnect(self, *, flush: bool = False) -> None:
        """Close the socket; with `flush`, after every queued edit was sent."""
        socket, self.socket, self.server = self.socket, None, None
        if socket is None:
            return

        async def close() -> None:
            if flush:
                with contextlib.suppress(TimeoutError):
                    await socket.flush()
            await socket.close()

        self.loop.run(close())

    def edit(self, op: dict[str, Any]) -> None:
        self.loop.call(lambda: workload.apply_edit(self.doc, op))

    def snapshot(self) -> tuple[bytes, dict[int, int]]:
        return self.loop.call(
            lambda: (self.doc.get_update(), decode_state_vector(self.doc.get_state()))
        )

    def close(self) -> None:
        self.disconnect()


DRIVER = Path(__file__).with_name("converge_client.mjs")


class NodePeer(Peer):
    def __init__(self, name: str) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH; the convergence suite needs it")
        self.name = name
        ARTIFACTS.mkdir(exist_ok=True)
        log = open(ARTIFACTS / f"converge-node-{name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [node, str(DRIVER)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        self._ids = itertools.count(1)
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"node-{name}", daemon=True).start()
        if not self._reply(time.monotonic() + 10).get("ready"):
            raise RuntimeError(f"node peer {name} did not start")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                if isinstance(message, dict) and "id" in message:
                    self._replies.put(message)
        self._replies.put(None)

    def _reply(self, deadline: float) -> dict[str, Any]:
        try:
            message = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"node peer {self.name} did not answer in time") from None
        if message is None:
            self._replies.put(None)
            raise RuntimeError(f"node peer {self.name} exited")
        return message

    def request(self, cmd: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "cmd": cmd, "timeout": int(timeout * 1000), **args})
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout + 5
        while (reply := self._reply(deadline))["id"] != request_id:
            pass
        if not reply.get("ok"):
            raise AssertionError(f"node peer {self.name} {cmd}: {reply.get('error')}")
        return reply

    def connect(self, server: ServerProcess, room: str, cookie: str, timeout: float = 10) -> None:
        self.request(
            "connect",
            url=server.ws_url,
            room=room,
            cookie=cookie,
            origin=server.http_url,
            timeout=timeout,
        )
        self.server = server

    def disconnect(self) -> None:
        self.request("disconnect")
        self.server = None

    def edit(self, op: dict[str, Any]) -> None:
        self.request("edit", **op)

    def snapshot(self) -> tuple[bytes, dict[int, int]]:
        reply = self.request("state")
        return (
            base64.b64decode(reply["update"]),
            decode_state_vector(base64.b64decode(reply["stateVector"])),
        )

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.request("exit", timeout=2)
                self.process.wait(3)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
