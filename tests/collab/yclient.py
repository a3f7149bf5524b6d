"""A y-websocket client made of a pycrdt Doc and a channels WebsocketCommunicator,
for consumer tests. It answers sync messages like a stock client does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from channels.testing import WebsocketCommunicator
from pycrdt import Doc, Text

from collab import protocol
from collab.protocol import MessageType, SyncStep, parse_message
from yjs.awareness import Entry, decode_entries, encode_entries


class YClient:
    def __init__(self, communicator: WebsocketCommunicator, client_id: int) -> None:
        self.communicator = communicator
        self.doc = Doc(client_id=client_id)
        self.text = self.doc.get("text", type=Text)
        self.awareness: dict[int, str] = {}
        self.saved: int | None = None
        self.denied = False
        self.frames: list[bytes] = []
        self.writes_sent = 0
        self._sending = True
        self.doc.observe(self._on_local)

    def _on_local(self, event) -> None:  # type: ignore[no-untyped-def]
        if self._sending:
            self.send_later(protocol.sync_update(event.update))

    def send_later(self, frame: bytes) -> None:
        message = protocol.parse_message(frame)
        if message.is_write:
            self.writes_sent += 1
        asyncio.get_running_loop().create_task(self.communicator.send_to(bytes_data=frame))

    def all_saved(self) -> bool:
        """Every write this client sent is committed (needs `?extensions=1`)."""
        return self.saved == self.writes_sent

    async def hello(self) -> None:
        """What a y-websocket provider sends on open: its step 1."""
        await self.communicator.send_to(bytes_data=protocol.sync_step1(self.doc.get_state()))

    async def set_presence(self, state: str, clock: int = 1) -> None:
        entry = Entry(self.doc.client_id, clock, state)
        await self.communicator.send_to(bytes_data=protocol.awareness(encode_entries([entry])))

    def handle(self, frame: bytes) -> None:
        self.frames.append(frame)
        kind, pos = protocol.read_var_uint(frame, 0)
        if kind == MessageType.AUTH:
            self.denied = True
            return
        if kind == MessageType.SAVED:
            self.saved = protocol.read_var_uint(frame, pos)[0]
            return
        message = parse_message(frame)
        if message.type is MessageType.SYNC:
            if message.step is SyncStep.STEP1:
                self.send_later(protocol.sync_step2(self.doc.get_update(message.payload)))
            else:
                self._sending = False
                try:
                    self.doc.apply_update(message.payload)
                finally:
                    self._sending = True
        elif message.type is MessageType.AWARENESS:
            for entry in decode_entries(message.payload):
                if entry.state == "null":
                    self.awareness.pop(entry.client_id, None)
                else:
                    self.awareness[entry.client_id] = entry.state

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Process incoming frames until `condition()` holds; fail after `timeout`."""
        async with asyncio.timeout(timeout):
            while not condition():
                output = await self.communicator.receive_output(timeout)
                if output["type"] == "websocket.close":
                    raise ConnectionError(f"closed with {output.get('code')}")
                self.handle(output["bytes"])

    async def closed_with(self, timeout: float = 5.0) -> int:
        async with asyncio.timeout(timeout):
            while True:
                output = await self.communicator.receive_output(timeout)
                if output["type"] == "websocket.close":
                    return int(output.get("code", 1000))
                self.handle(output["bytes"])
