"""
uvicorn's websockets-sansio protocol with two changes that throttling sockets needs;
every launcher selects it with `--ws collab.websocket_protocol:WebSocketProtocol`.

A socket over its budget is slowed by not reading it: the consumer waits for a token
before it asks uvicorn for the next frame (collab/rooms.py, `Room._hold_back`).

uvicorn 0.54 already pushes back when the application stops reading: it pauses the
transport after it queues a message and resumes only once the application has taken
every queued message, so the kernel's buffers fill and TCP stops the client. But it
parses and queues everything that came in one read first: up to 256 KiB (the read size
of uvloop and asyncio), which is 17,000 messages of 8 bytes, about 4 MB of Python
objects that a throttled socket then holds for minutes. Here bytes beyond
`QUEUE_LIMIT` queued messages stay raw until the application has taken them, and are
parsed `SLICE_BYTES` at a time; a socket holds at most one read raw and about
`QUEUE_LIMIT + SLICE_BYTES / 6` messages.

At a server stop, frames it has not taken yet are dropped rather than handed over at the
budget's pace (the client's Yjs sync sends their content again when it reconnects).

Keepalive: a client's pong comes behind the frames it sent before it, which the server
does not read while it holds the socket back, so uvicorn's pong deadline would close a
throttled client with 1011 once its backlog is longer than `--ws-ping-timeout`. While
reading is paused the deadline is pushed back; once the application has caught up and
reading resumes, a peer that does not answer is dropped as before.
"""

from __future__ import annotations

from typing import Any

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

QUEUE_LIMIT = 64
"""Messages queued for the application before further bytes stay unparsed."""
SLICE_BYTES = 4096
"""Bytes parsed at a time when the application is behind: at most ~680 messages (the
smallest client frame is 6 bytes)."""


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unparsed = bytearray()

    def data_received(self, data: bytes) -> None:
        # The common case (a small read, an application that keeps up) goes straight
        # through: one length check and one queue size more per read.
        if self.unparsed or len(data) > SLICE_BYTES or self.queue.qsize() >= QUEUE_LIMIT:
            self.unparsed += data
            self._parse_ahead()
        else:
            super().data_received(data)

    def _parse_ahead(self) -> None:
        unparsed = self.unparsed
        # After our close frame the parser only waits for the peer's reply, and uvicorn
        # drops what it parses: nothing is queued, so everything is fed.
        while unparsed and (self.queue.qsize() < QUEUE_LIMIT or self.close_sent):
            if self.transport.is_closing():
                unparsed.clear()
                return
            piece = bytes(unparsed[:SLICE_BYTES])
            del unparsed[:SLICE_BYTES]
            super().data_received(piece)
        if unparsed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> ASGIReceiveEvent:
        message = await self.queue.get()
        if self.unparsed:
            self._parse_ahead()
        if self.read_paused and not self.unparsed and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def connection_lost(self, exc: Exception | None) -> None:
        # The application's disconnect is queued behind what was parsed already; what
        # was not cannot reach it any more.
        self.unparsed.clear()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # The server is stopping. Frames a throttled socket has not been let through yet
        # would hold the stop up at the pace of its budget (uvicorn waits for the
        # application, then cancels it): they are dropped, and the client's Yjs sync
        # sends what they held again when it reconnects.
        if self.handshake_complete:
            self.unparsed.clear()
            kept = []
            while not self.queue.empty():
                message = self.queue.get_nowait()
                if message["type"] != "websocket.receive":
                    kept.append(message)
            for message in kept:
                self.queue.put_nowait(message)
        super().shutdown()

    def keepalive_timeout(self) -> None:
        if self.read_paused and not self.close_sent and not self.transport.is_closing():
            # The pong may be among the bytes not read yet: wait until reading resumes.
            assert self.ping_timeout is not None  # this timer runs only with a timeout
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
            return
        super().keepalive_timeout()
