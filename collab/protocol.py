"""
The y-websocket wire protocol: framing of messages, nothing else.

Pure functions over bytes (standard library and pycrdt only, no Django), so that the
protocol can be tested with two pycrdt documents as peers. Frames are parsed strictly:
anything that a stock y-websocket client would not send raises `ProtocolError`, and the
caller closes that one socket.

    [0 sync][0 step 1][varbytes state vector]
    [0 sync][1 step 2][varbytes update]
    [0 sync][2 update][varbytes update]
    [1 awareness][varbytes awareness update]
    [2 auth][0 permission denied][varstring reason]      (server to client only)
    [3 query awareness]
    [100 saved][varuint count]                           (extension, server to client)
    [101 title][varstring title]                         (extension, server to client)

Extensions are sent only to sockets that opened with `?extensions=1`, so stock clients
never see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from yjs.codec import ProtocolError, read_var_bytes, read_var_uint, write_var_uint


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    # Extensions, sent only to clients that asked for them (`?extensions=1`).
    SAVED = 100
    """How many of this connection's write messages (sync step 2 and update frames,
    empty ones included) are committed to the database so far."""
    TITLE = 101
    """The document's title changed."""


class SyncStep(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class AuthReply(IntEnum):
    PERMISSION_DENIED = 0


class CloseCode(IntEnum):
    """Codes a socket is closed with after it was accepted (before, a browser only sees
    an HTTP 403 whatever the code)."""

    BAD_MESSAGE = 4400
    NOT_SIGNED_IN = 4401
    ACCESS_REVOKED = 4403
    DOCUMENT_GONE = 4404
    TOO_SLOW = 4408
    """More frames queued for the socket than it reads: it is not keeping up."""
    TOO_MANY_SOCKETS = 4409
    """The user has COLLAB_MAX_SOCKETS_PER_USER sockets open already (on any document or
    process). Sent right after `accept()`, so that a browser sees the code, which it would
    not if the handshake were refused; the editor stops reconnecting and says why."""
    TOO_LARGE = 4413
    """A frame, or the document it would grow, is over its size limit."""
    RATE_LIMITED = 4429
    SERVER_ERROR = 4500


def close_code_for(error: ProtocolError) -> CloseCode:
    """The code a socket is closed with for a frame that raised `error`: 4400 for
    malformed bytes (yjs.codec.ProtocolError and its kin), or the subclass's own."""
    return getattr(error, "close_code", CloseCode.BAD_MESSAGE)


class RateLimited(ProtocolError):
    close_code = CloseCode.RATE_LIMITED


class TooLarge(ProtocolError):
    close_code = CloseCode.TOO_LARGE


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    step: SyncStep | None
    payload: bytes

    @property
    def is_write(self) -> bool:
        """Whether applying the message would change the document."""
        return self.type is MessageType.SYNC and self.step is not SyncStep.STEP1


def parse_message(frame: bytes) -> Message:
    """Parse one client-to-server frame; raise `ProtocolError` if it is not one."""
    if not frame:
        raise ProtocolError("empty frame")
    kind, pos = read_var_uint(frame, 0)
    step: SyncStep | None = None
    if kind == MessageType.SYNC:
        raw_step, pos = read_var_uint(frame, pos)
        try:
            step = SyncStep(raw_step)
        except ValueError:
            raise ProtocolError(f"unknown sync step {raw_step}") from None
        payload, pos = read_var_bytes(frame, pos)
        message_type = MessageType.SYNC
    elif kind == MessageType.AWARENESS:
        payload, pos = read_var_bytes(frame, pos)
        message_type = MessageType.AWARENESS
    elif kind == MessageType.QUERY_AWARENESS:
        payload = b""
        message_type = MessageType.QUERY_AWARENESS
    else:
        # Auth and the extensions only ever travel from server to client.
        raise ProtocolError(f"unexpected message type {kind}")
    if pos != len(frame):
        raise ProtocolError("trailing bytes after message")
    return Message(message_type, step, payload)


def _frame(*parts: int | bytes) -> bytes:
    out = bytearray()
    for part in parts:
        if isinstance(part, int):
            out += write_var_uint(part)
        else:
            out += write_var_uint(len(part))
            out += part
    return bytes(out)


def sync_step1(state_vector: bytes) -> bytes:
    return _frame(MessageType.SYNC, SyncStep.STEP1, state_vector)


def sync_step2(update: bytes) -> bytes:
    return _frame(MessageType.SYNC, SyncStep.STEP2, update)


def sync_update(update: bytes) -> bytes:
    return _frame(MessageType.SYNC, SyncStep.UPDATE, update)


def awareness(update: bytes) -> bytes:
    return _frame(MessageType.AWARENESS, update)


def query_awareness() -> bytes:
    return _frame(MessageType.QUERY_AWARENESS)


def permission_denied(reason: str) -> bytes:
    return _frame(MessageType.AUTH, AuthReply.PERMISSION_DENIED, reason.encode())


def saved(count: int) -> bytes:
    return _frame(MessageType.SAVED, count)


def title(text: str) -> bytes:
    return _frame(MessageType.TITLE, text.encode())


EMPTY_UPDATE = b"\x00\x00"
"""An update with no structs and an empty delete set (what an up-to-date peer sends)."""
