"""
The WebSocket endpoint `/ws/documents/<uuid>`: the y-websocket protocol for one document.

The consumer authenticates at connect (closing before `accept()` when the user may not
read the document, which a browser sees as HTTP 403), then hands frames to the document's
room. What the room sends goes through a queue per socket with its own writer task, so a
slow client never stalls the room and a client that falls too far behind is closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from collab import metrics
from collab.conf import conf
from collab.persistence import DocumentGone
from collab.protocol import CloseCode, ProtocolError, close_code_for
from collab.registry import registry
from collab.rooms import Room
from collab.socket_cap import Refused, Seat, socket_counts
from documents.access import aget_document_access
from documents.people import presence_user

logger = logging.getLogger(__name__)

# The close reason of 4409, for clients other than the editor (which has its own text).
TOO_MANY_SOCKETS_REASON = "Too many open connections: close some tabs or windows, then reload"


class SocketConnection:
    """What a room sees of one socket: who it is and a non-blocking `send`/`close`."""

    def __init__(
        self,
        *,
        user_id: int,
        presence_user: dict[str, object],
        session_key: str | None,
        can_write: bool,
        extensions: bool,
        document_id: uuid.UUID | None = None,
    ) -> None:
        self.user_id = user_id
        # Resolved once, from the account: the room writes it into every presence
        # state this socket sends, without a query per frame.
        self.presence_user = presence_user
        self.document_id = document_id
        self.session_key = session_key
        self.can_write = can_write
        self.extensions = extensions
        self.closed = False
        self.held: asyncio.Event | None = None
        """Set while an account change of this user is checked (collab/accounts.py):
        nothing more is read from the socket until it is settled."""
        # A deque and a future, not an asyncio.Queue: the queue's three deques and
        # event took ~3 KiB per socket, a tenth of what an idle connection costs.
        self.outbox: deque[bytes | tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # Read once: a Django settings lookup per frame per socket shows in profiles.
        self.limit = conf.SEND_QUEUE_LIMIT

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self.outbox) >= self.limit:
            logger.warning(
                "Closing the socket of user %s: it is not reading",
                self.user_id,
                extra={
                    "document_id": self.document_id,
                    "user_id": self.user_id,
                    "close_code": int(CloseCode.TOO_SLOW),
                },
            )
            # What it has not read yet is dropped: its client resyncs on reconnect.
            self.outbox.clear()
            self.close(CloseCode.TOO_SLOW)
            return
        self._put(frame)

    def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        metrics.CLOSED.labels(str(code)).inc()
        # Queued after what was already sent its way (an error notice, say).
        self._put((code, reason))

    def _put(self, item: bytes | tuple[int, str]) -> None:
        self.outbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def queued(self) -> deque[bytes | tuple[int, str]]:
        """The outbox, once it holds something."""
        while not self.outbox:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.outbox


def _unwrapped(send: Any) -> Any:
    """The ASGI send below Channels' session middleware. Its wrapper looks at the session
    on every message to save it with an HTTP response, which a WebSocket never sends;
    for the frames of a busy room those checks show in profiles."""
    while hasattr(getattr(send, "__self__", None), "real_send"):
        send = send.__self__.real_send
    return send


class DocumentConsumer(AsyncWebsocketConsumer):
    # Rooms, not sockets, subscribe to the channel layer: one subscription per process
    # and open document instead of one per socket.
    channel_layer_alias = None  # type: ignore[assignment]

    connection: SocketConnection | None = None
    room: Room | None = None
    _max_bytes = 0
    _writer: asyncio.Task[None] | None = None
    _seat: Seat | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels' AsyncConsumer.__call__ listens on the socket and a channel layer at
        # once, which costs a new task and an asyncio.wait per frame; this consumer has
        # one input, the socket, so it reads it in a plain loop.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            if self.connection is not None:
                metrics.CONNECTIONS.dec()
            # Under uvicorn a send to a closing client can end the consumer without
            # websocket.disconnect ever being dispatched: clean up here, always.
            self._leave_room()
            if self._writer is not None:
                self._writer.cancel()
            if self._seat is not None:
                socket_counts.release(self._seat)
                self._seat = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler. Frames never
        # touch the database in this consumer (rooms do, in their own tasks), so that
        # thread hop per frame is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        document_id: uuid.UUID = self.scope["url_route"]["kwargs"]["document_id"]
        if user is None or not user.is_authenticated:
            logger.info(
                "Refused an anonymous socket for %s",
                self.scope.get("path"),
                extra={"document_id": document_id, "close_code": int(CloseCode.NOT_SIGNED_IN)},
            )
            await self.close(code=CloseCode.NOT_SIGNED_IN)
            return
        access = await aget_document_access(user, document_id)
        if access is None:
            logger.info(
                "Refused user %s a socket for document %s",
                user.pk,
                document_id,
                extra={
                    "document_id": document_id,
                    "user_id": user.pk,
                    "close_code": int(CloseCode.DOCUMENT_GONE),
                },
            )
            await self.close(code=CloseCode.DOCUMENT_GONE)
            return
        cap = conf.MAX_SOCKETS_PER_USER
        if cap:
            try:
                self._seat = await socket_counts.admit(user.pk, cap)
            except Refused as refused:
                await self._refuse_over_cap(user.pk, document_id, refused)
                return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        session = self.scope.get("session")
        connection = SocketConnection(
            user_id=user.pk,
            presence_user=presence_user(user),
            session_key=session.session_key if session is not None else None,
            can_write=access.can_write,
            extensions=query.get("extensions") == ["1"],
            document_id=document_id,
        )
        self.connection = connection
        self._max_bytes = conf.MAX_MESSAGE_BYTES
        await self.accept()
        metrics.CONNECTIONS.inc()
        self._writer = asyncio.ensure_future(self._write_forever(connection))
        try:
            self.room = await registry.join(document_id, connection)
        except DocumentGone:
            connection.close(CloseCode.DOCUMENT_GONE)
        except Exception:
            logger.exception(
                "Opening document %s failed",
                document_id,
                extra={"document_id": document_id, "user_id": user.pk},
            )
            connection.close(CloseCode.SERVER_ERROR)

    async def _refuse_over_cap(
        self, user_id: int, document_id: uuid.UUID, refused: Refused
    ) -> None:
        logger.info(
            "Refused user %s a socket: %s",
            user_id,
            refused,
            extra={
                "document_id": document_id,
                "user_id": user_id,
                "close_code": int(CloseCode.TOO_MANY_SOCKETS),
                "count": refused.count,
            },
        )
        metrics.CLOSED.labels(str(int(CloseCode.TOO_MANY_SOCKETS))).inc()
        # Accepted first: a handshake refused outright reaches a browser as a bare 403,
        # without the code that tells the editor to stop reconnecting and say why.
        await self.accept()
        await self.close(code=CloseCode.TOO_MANY_SOCKETS, reason=TOO_MANY_SOCKETS_REASON)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        connection, room = self.connection, self.room
        if connection is None or room is None or connection.closed:
            return
        while connection.held is not None:
            # Not reading on holds the client back (TCP), and what it sent after its
            # account changed is dropped if the check signs it out.
            await connection.held.wait()
            if connection.closed:
                return
        if bytes_data is None:
            self._reject(CloseCode.BAD_MESSAGE, "text_frame", "text frame")
        elif len(bytes_data) > self._max_bytes:
            self._reject(CloseCode.TOO_LARGE, "frame_too_large", f"{len(bytes_data)}-byte frame")
        else:
            try:
                await room.receive(connection, bytes_data)
            except ProtocolError as exc:
                self._reject(close_code_for(exc), _reason(exc), str(exc))
            except Exception:
                logger.exception(
                    "Handling a frame for document %s failed",
                    room.document_id,
                    extra={"document_id": room.document_id, "user_id": connection.user_id},
                )
                self._reject(CloseCode.SERVER_ERROR, "server_error", "server error")

    async def disconnect(self, code: int) -> None:
        self._leave_room()

    def _reject(self, code: CloseCode, reason: str, detail: str) -> None:
        """Close the socket over a frame it sent. `reason` is a short fixed name (a
        metric label and log field), `detail` the human explanation."""
        connection = self.connection
        assert connection is not None
        metrics.REJECTED_FRAMES.labels(str(int(code)), reason).inc()
        logger.warning(
            "Closing socket of user %s with %s: %s",
            connection.user_id,
            code.name,
            detail,
            extra={
                "document_id": connection.document_id,
                "user_id": connection.user_id,
                "close_code": int(code),
                "reason": reason,
            },
        )
        self._leave_room()
        connection.close(code, detail)

    def _leave_room(self) -> None:
        room, self.room = self.room, None
        if room is not None and self.connection is not None:
            registry.leave(room, self.connection)

    async def _write_forever(self, connection: SocketConnection) -> None:
        # Frames go to the ASGI send below Channels' per-message wrappers, and whatever
        # queued up meanwhile is written without waking this task once per frame: this
        # loop runs once per frame per socket, the hottest path of a busy room.
        send = _unwrapped(self.base_send)
        while True:
            outbox = await connection.queued()
            while outbox:
                item = outbox.popleft()
                if isinstance(item, tuple):
                    code, reason = item
                    await self.close(code=code, reason=reason or None)
                    return
                await send({"type": "websocket.send", "bytes": item})


def _reason(exc: ProtocolError) -> str:
    """A bounded label for a refused frame: its error class in snake case
    (protocol_error, invalid_update, rate_limited, too_large)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
