"""
New sockets while PostgreSQL is away: refused with close code 1013 ("try again later"),
and the outage logged once per process, not once per attempt.

Every handshake needs the database before the consumer runs (Channels' auth middleware
loads the session and the user, the consumer the document's access). Without this guard
each one raised in that middleware during an outage, and uvicorn logged a full traceback
and answered HTTP 500, attempt after attempt, every client reconnecting with backoff.

The handshake is accepted and then closed with 1013, rather than refused with an HTTP
status: a browser sees the close code (of a refused handshake, it sees nothing), and
y-websocket clients retry with their backoff. Sockets already open are not touched: their
edits stay live and are stored once the database is back (the journal retries, and "saved"
notices wait for the commit).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError, connection

from collab import metrics

logger = logging.getLogger(__name__)

DATABASE_DOWN = (OperationalError, InterfaceError)
"""What Django raises when PostgreSQL cannot be reached or the connection broke."""
TRY_AGAIN_LATER = 1013
REASON = "database unavailable, try again later"


class Outage:
    """Whether this process found the database away, logged once when it goes and once
    when it is back. Only the event loop's thread touches it."""

    def __init__(self) -> None:
        self.since: float | None = None
        """When the current outage was noticed (time.monotonic()), None while up."""
        self.refused = 0
        """Handshakes refused during the current outage."""

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        self.refused += 1
        if self.since is not None:
            return
        self.since = time.monotonic()
        # One line, no traceback: the cause is in the exception's first line.
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        logger.error(
            "Database unavailable (%s: %s): new sockets are closed with %s until it answers",
            type(exc).__name__,
            cause,
            TRY_AGAIN_LATER,
            extra={"close_code": TRY_AGAIN_LATER},
        )

    def answered(self) -> None:
        since, self.since = self.since, None
        if since is None:
            return
        logger.warning(
            "Database back after %.1f s; %d new sockets were refused meanwhile",
            time.monotonic() - since,
            self.refused,
            extra={"count": self.refused},
        )
        self.refused = 0


outage = Outage()


@database_sync_to_async
def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DATABASE_DOWN:
        return False
    return True


class DatabaseOutageGuard:
    """ASGI middleware around the WebSocket stack: a handshake that fails because the
    database is away is closed with 1013 instead of raising. While an outage is on,
    each new handshake first checks that the database answers (one SELECT 1), so that
    its end is noticed and logged."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handshake = _Handshake(send)
        if outage.down:
            if not await _database_answers():
                outage.refused += 1
                await handshake.refuse()
                return
            outage.answered()
        try:
            await self.application(scope, receive, handshake.send)
        except DATABASE_DOWN as exc:
            outage.failed(exc)
            await handshake.refuse()


class _Handshake:
    """The ASGI send of one socket, noting whether it was accepted or closed. Consumers
    write frames below it (`real_send`, see collab/consumers.py `_unwrapped`)."""

    __slots__ = ("accepted", "closed", "real_send")

    def __init__(self, send: Any) -> None:
        self.real_send = send
        self.accepted = False
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind in ("websocket.close", "websocket.http.response.start"):
            self.closed = True
        await self.real_send(message)

    async def refuse(self) -> None:
        """Close with 1013, accepting first if need be. websocket.connect may still be
        queued (the auth middleware raised before anything read it): servers accept
        without it having been read."""
        if self.closed:
            return
        if not self.accepted:
            await self.real_send({"type": "websocket.accept"})
        metrics.CLOSED.labels(str(TRY_AGAIN_LATER)).inc()
        await self.real_send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": REASON})
