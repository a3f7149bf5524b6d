"""A fake connection for room tests: records frames and turns them into a client doc."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pycrdt import Doc, Text

from collab import protocol
from collab.protocol import MessageType, SyncStep
from yjs.awareness import decode_entries


class FakeConnection:
    def __init__(self, *, user_id: int | None = None, can_write: bool = True) -> None:
        self.user_id = user_id
        self.presence_user: dict[str, object] = {"id": user_id, "name": f"user {user_id}"}
        self.session_key: str | None = None
        self.can_write = can_write
        self.extensions = True
        self.frames: list[bytes] = []
        self.closed_with: int | None = None
        self.doc = Doc()
        self.presence: dict[int, str] = {}
        self.saved = 0
        self.denied = 0
        self._changed = asyncio.Event()

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        kind, pos = protocol.read_var_uint(frame, 0)
        if kind == MessageType.SAVED:
            self.saved = protocol.read_var_uint(frame, pos)[0]
        elif kind == MessageType.AUTH:
            self.denied += 1
        else:
            message = protocol.parse_message(frame)
            if message.type is MessageType.SYNC and message.step is not SyncStep.STEP1:
                self.doc.apply_update(message.payload)
            elif message.type is MessageType.AWARENESS:
                for entry in decode_entries(message.payload):
                    if entry.state == "null":
                        self.presence.pop(entry.client_id, None)
                    else:
                        self.presence[entry.client_id] = entry.state
        self._changed.set()

    def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self.closed_with is not None

    @property
    def text(self) -> str:
        return str(self.doc.get("t", type=Text))

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def typed(*chunks: str, client_id: int = 1, name: str = "t") -> list[bytes]:
    """The updates a client produces typing `chunks` into text `name` one by one."""
    doc = Doc(client_id=client_id)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get(name, type=Text)
    for chunk in chunks:
        text += chunk
    return updates
