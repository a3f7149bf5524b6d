"""A small y-websocket client for end-to-end tests: a pycrdt `Doc` on a real WebSocket
(`websockets`), speaking the protocol the way a stock y-websocket provider does.

It answers the server's sync step 1 with a step 2, applies incoming updates, sends local
edits as update frames, keeps the awareness table it is told about, counts the "saved"
extension notices, and records the close code when the server ends the socket. It can
also send arbitrary raw frames, which is what the malformed-input tests need.

The framing is written here on purpose instead of importing `collab.protocol`: an
end-to-end client must not share the server's idea of the wire format, or a framing bug
would be invisible on both sides. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text, TransactionEvent, write_var_uint
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Message types and sync steps of y-protocols, plus the server's opt-in extensions.
SYNC, AWARENESS, AUTH, QUERY_AWARENESS = 0, 1, 2, 3
SAVED, TITLE = 100, 101
STEP1, STEP2, UPDATE = 0, 1, 2
EMPTY_UPDATE = b"\x00\x00"
ABNORMAL_CLOSURE = 1006
"""Reported when the TCP connection ended without a close frame from the server."""


class Disconnected(ConnectionError):
    """The socket closed while a caller was waiting for something else."""

    def __init__(self, code: int) -> None:
        super().__init__(f"socket closed with code {code}")
        self.code = code


class MalformedFromServer(ValueError):
    """The server sent a frame this client cannot parse."""


# Framing


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise MalformedFromServer("truncated varuint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise MalformedFromServer("varuint too long")


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(data, pos)
    if pos + length > len(data):
        raise MalformedFromServer("truncated payload")
    return data[pos : pos + length], pos + length


def var_bytes(payload: bytes) -> bytes:
    return write_var_uint(len(payload)) + payload


def frame(*parts: int | bytes) -> bytes:
    """Concatenate varuints (ints) and length-prefixed byte strings (bytes)."""
    out = bytearray()
    for part in parts:
        out += write_var_uint(part) if isinstance(part, int) else var_bytes(part)
    return bytes(out)


def sync_step1(state_vector: bytes) -> bytes:
    return frame(SYNC, STEP1, state_vector)


def sync_step2(update: bytes) -> bytes:
    return frame(SYNC, STEP2, update)


def sync_update(update: bytes) -> bytes:
    return frame(SYNC, UPDATE, update)


def encode_awareness(entries: list[tuple[int, int, str]]) -> bytes:
    """An awareness update from `(client id, clock, state JSON)` entries."""
    out = bytearray(write_var_uint(len(entries)))
    for client_id, clock, state in entries:
        out += write_var_uint(client_id) + write_var_uint(clock) + var_bytes(state.encode())
    return bytes(out)


def decode_awareness(payload: bytes) -> list[tuple[int, int, str]]:
    count, pos = read_var_uint(payload, 0)
    entries = []
    for _ in range(count):
        client_id, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        state, pos = read_var_bytes(payload, pos)
        entries.append((client_id, clock, state.decode("utf-8")))
    return entries


def awareness_frame(entries: list[tuple[int, int, str]]) -> bytes:
    return frame(AWARENESS, encode_awareness(entries))


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    count, pos = read_var_uint(state_vector, 0)
    clocks = {}
    for _ in range(count):
        client_id, pos = read_var_uint(state_vector, pos)
        clocks[client_id], pos = read_var_uint(state_vector, pos)
    return clocks


def is_write(message: bytes) -> bool:
    """Whether a server following the protocol could change the document because of
    this frame: a binary sync step 2 or update (whatever its payload holds)."""
    try:
        kind, pos = read_var_uint(message, 0)
        if kind != SYNC:
            return False
        step, _ = read_var_uint(message, pos)
    except MalformedFromServer:
        return False
    return step in (STEP2, UPDATE)


# The client


class YClient:
    """One socket and one document. Create with `await YClient.open(...)`."""

    def __init__(self, ws: ClientConnection, doc: Doc, *, sync: bool, root: str) -> None:
        self.ws = ws
        self.doc = doc
        self.text = doc.get(root, type=Text)
        self.sync = sync
        """Answer step 1 and apply updates (a stock client); off for a raw-frame sender."""
        self.synced = False
        """A sync step 2 from the server has been applied."""
        self.awareness: dict[int, str] = {}
        self.awareness_seen: set[tuple[int, str]] = set()
        """Every (client id, state) this socket was ever told about."""
        self.saved: int | None = None
        self.writes_sent = 0
        self.denied = False
        self.close_code: int | None = None
        self.server_errors: list[str] = []
        """Frames from the server this client could not make sense of."""
        self._clock = 0
        self._applying_remote = False
        self._changed = asyncio.Event()
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.ensure_future(self._read_forever())
        self._writer = asyncio.ensure_future(self._write_forever())
        self._subscription = doc.observe(self._on_transaction)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        cookie: str,
        origin: str,
        client_id: int | None = None,
        sync: bool = True,
        extensions: bool = False,
        root: str = "text",
        timeout: float = 10.0,
    ) -> YClient:
        """Connect and, for a syncing client, send step 1 like a provider does on open."""
        if extensions:
            url += "?extensions=1"
        ws = await asyncio.wait_for(
            connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
                # Frame sizes must be what the test says they are: no deflate, no cap on
                # what the server sends, no proxy from the environment, and no pings
                # that would add traffic of their own.
                compression=None,
                max_size=None,
                proxy=None,
                ping_interval=None,
                open_timeout=timeout,
                close_timeout=2,
            ),
            timeout,
        )
        doc = Doc(client_id=client_id) if client_id is not None else Doc()
        client = cls(ws, doc, sync=sync, root=root)
        if sync:
            await client.send(sync_step1(doc.get_state()))
        return client

    # Sending

    async def send(self, message: bytes | str) -> None:
        """Send one frame as is; `Disconnected` if the socket is closed meanwhile."""
        if isinstance(message, bytes) and is_write(message):
            self.writes_sent += 1
        await self._send_frame(message)

    def _queue(self, message: bytes) -> None:
        # Counted when queued, not when sent: "every write saved" must not hold while an
        # edit still waits for its turn to go out.
        if is_write(message):
            self.writes_sent += 1
        self._outgoing.put_nowait(message)

    async def _send_frame(self, message: bytes | str) -> None:
        try:
            async with self._send_lock:
                await self.ws.send(message)
        except ConnectionClosed as exc:
            raise Disconnected(self._code_of(exc)) from None

    def type_text(self, text: str) -> None:
        """Append `text` at the end of the document; the update goes out in order."""
        self.text.insert(len(self.text), text)

    async def set_presence(self, state: dict[str, Any]) -> int:
        """Announce this client's awareness state; return the clock used."""
        self._clock += 1
        entry = (self.doc.client_id, self._clock, json.dumps(state, sort_keys=True))
        await self.send(awareness_frame([entry]))
        return self._clock

    def _on_transaction(self, event: TransactionEvent) -> None:
        if not self._applying_remote and event.update != EMPTY_UPDATE:
            self._queue(sync_update(event.update))

    async def _write_forever(self) -> None:
        while True:
            message = await self._outgoing.get()
            try:
                await self._send_frame(message)
            except Disconnected:
                return  # the reader records the close code

    # Receiving

    async def _read_forever(self) -> None:
        try:
            while True:
                message = await self.ws.recv()
                if isinstance(message, str):
                    self.server_errors.append("text frame from server")
                else:
                    self._handle(message)
                self._changed.set()
        except ConnectionClosed as exc:
            self.close_code = self._code_of(exc)
        finally:
            if self.close_code is None:
                self.close_code = ABNORMAL_CLOSURE
            self._changed.set()

    @staticmethod
    def _code_of(exc: ConnectionClosed) -> int:
        return exc.rcvd.code if exc.rcvd is not None else ABNORMAL_CLOSURE

    def _handle(self, message: bytes) -> None:
        try:
            kind, pos = read_var_uint(message, 0)
            if kind == SYNC:
                step, pos = read_var_uint(message, pos)
                payload, pos = read_var_bytes(message, pos)
                if self.sync:
                    self._handle_sync(step, payload)
            elif kind == AWARENESS:
                payload, pos = read_var_bytes(message, pos)
                for client_id, _clock, state in decode_awareness(payload):
                    self.awareness_seen.add((client_id, state))
                    if state == "null":
                        self.awareness.pop(client_id, None)
                    else:
                        self.awareness[client_id] = state
            elif kind == AUTH:
                self.denied = True
            elif kind == SAVED:
                self.saved, pos = read_var_uint(message, pos)
            elif kind == TITLE:
                _, pos = read_var_bytes(message, pos)
            else:
                raise MalformedFromServer(f"unknown message type {kind}")
        except (MalformedFromServer, UnicodeDecodeError) as exc:
            self.server_errors.append(f"{exc}: {message[:40].hex()}")

    def _handle_sync(self, step: int, payload: bytes) -> None:
        if step == STEP1:
            self._queue(sync_step2(self.doc.get_update(payload)))
        elif step in (STEP2, UPDATE):
            self._applying_remote = True
            try:
                self.doc.apply_update(payload)
            finally:
                self._applying_remote = False
            if step == STEP2:
                self.synced = True
        else:
            raise MalformedFromServer(f"unknown sync step {step}")

    # Waiting

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `condition()` holds; `Disconnected` if the socket closes first,
        `TimeoutError` after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                # Cleared before the check: a change made after it sets the event again.
                self._changed.clear()
                if condition():
                    return
                if self.close_code is not None:
                    raise Disconnected(self.close_code)
                await self._changed.wait()

    async def until_closed(self, timeout: float = 10.0) -> int:
        async with asyncio.timeout(timeout):
            while self.close_code is None:
                self._changed.clear()
                await self._changed.wait()
        return self.close_code

    async def until_saved(self, timeout: float = 10.0) -> None:
        """Every write sent so far is committed (needs `extensions=True`)."""
        await self.until(lambda: self.saved == self.writes_sent, timeout)

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    @property
    def state(self) -> dict[int, int]:
        return decode_state_vector(self.doc.get_state())

    async def close(self) -> None:
        self.doc.unobserve(self._subscription)
        self._writer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        await asyncio.gather(self._reader, self._writer, return_exceptions=True)
