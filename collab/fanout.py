"""
A room's link to the document's channel-layer group: one subscription per process and
document (the room subscribes, not each socket), an outbox so that publishing never
blocks the room, and the messages of the other processes' rooms coming in.

Messages (msgpack over channels-redis; every one carries the sender's `origin`, and
what a room publishes its wall-clock `sent_at`, for the fan-out latency metric):
    room.update     {n, update, author}    an update a local client sent, at once
    room.committed  {ns, first, last}      those updates are log rows first..last
    room.awareness  {update, owners}       presence of local clients, [client id, user id]
                                           of each (rooms.py, owners.py)
    room.access     {}                     re-check who may read and write (documents)
    room.title      {title}                the document was renamed (documents)
    room.batch      {messages}             several of the above, in order
    room.hello      {}                     a room joined the group (published on join)
    room.here       {last}                 reply to a hello: the replier's log watermark
    room.bye        {}                     a room is leaving the group

A room alone in its group publishes nothing: a PUBLISH that only its own process
receives cost a fifth of the server's CPU under load (bench/NOTES.md). A room learns of
the others from their hello (it answers with `room.here`), from their replies to its own
hello, and from any message they publish; a bye takes them off. For `PEER_GRACE_SECONDS`
after joining it publishes everything anyway, since replies to its hello may still be on
their way. What a room did not publish while alone reaches a newcomer through the log:
the newcomer loads it, and heals what the `room.here` watermark or a commit marker shows
it lacks (the periodic check against the log stays the safety net).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from channels.layers import BaseChannelLayer

from collab import metrics

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 10_000
# How long a message that nobody waits for (a commit marker) may wait for a PUBLISH to
# ride along with. A PUBLISH was a fifth of the server's CPU at 200 edits/s, and a marker
# per commit doubled their number (bench/NOTES.md).
DEFER_SECONDS = 0.05
PEER_GRACE_SECONDS = 5.0
"""How long after joining a room publishes as if it had company."""
HELLO, HERE, BYE = "room.hello", "room.here", "room.bye"

Message = dict[str, Any]


class GroupLink:
    def __init__(
        self,
        layer: BaseChannelLayer,
        group: str,
        *,
        origin: str,
        on_message: Callable[[Message], None],
        stats: Counter[str],
    ) -> None:
        self.layer = layer
        self.group = group
        self.origin = origin
        self._on_message = on_message
        self._stats = stats
        self._channel: str | None = None
        self._outbox: asyncio.Queue[Message] = asyncio.Queue(OUTBOX_LIMIT)
        self._deferred: list[Message] = []
        self._drained = asyncio.Event()
        """Set while nothing is queued or on its way."""
        self._drained.set()
        self.peers: set[str] = set()
        """Origins of the other rooms (other processes) known to have the group open."""
        self._joined_at: float | None = None

    @property
    def alone(self) -> bool:
        """Whether publishing would reach nobody: no other room known, after the grace."""
        return (
            not self.peers
            and self._joined_at is not None
            and time.monotonic() - self._joined_at >= PEER_GRACE_SECONDS
        )

    async def join(self) -> None:
        self._channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self._channel)
        self._joined_at = time.monotonic()
        self._enqueue({"type": HELLO, "origin": self.origin})

    async def leave(self) -> None:
        if self._channel is None:
            return
        try:
            # Sent directly, not queued: the publisher task is about to be cancelled.
            await self.layer.group_send(self.group, {"type": BYE, "origin": self.origin})
        except Exception:
            pass  # the others keep publishing to a room that is gone: harmless
        try:
            await self.layer.group_discard(self.group, self._channel)
        except Exception:
            logger.warning(
                "Leaving group %s failed", self.group, exc_info=True, extra={"group": self.group}
            )

    def publish(self, message: Message, *, urgent: bool = True) -> None:
        """Queue a message for the group. One that is not `urgent` leaves with the next
        urgent one, after it, or on its own within DEFER_SECONDS."""
        if self.alone:
            self._stats["publish_skipped"] += 1
            return
        message = {"origin": self.origin, **message}
        if urgent:
            self._enqueue(message)
            return
        if not self._deferred:
            asyncio.get_running_loop().call_later(DEFER_SECONDS, self._release_deferred)
        self._deferred.append(message)

    def _release_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            self._enqueue(message)

    async def flush(self) -> None:
        """Publish everything queued, deferred messages too (a room about to stop must
        not take its last commit markers with it); returns once they are sent."""
        self._release_deferred()
        await self._drained.wait()

    def _enqueue(self, message: Message) -> None:
        self._drained.clear()
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            # Receivers heal from the log what never reaches them.
            self._stats["publish_dropped"] += 1
            metrics.PUBLISH_DROPPED.inc()

    async def publish_forever(self) -> None:
        failing = False
        while True:
            # Everything queued while the previous PUBLISH was on its way goes out as one
            # message: one Redis round trip per loop turn, not per keystroke.
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            # After the queued messages, never before: a commit marker must not overtake
            # an update it names that is still queued (receivers would heal, then adopt).
            batch += self._deferred
            self._deferred = []
            message = (
                batch[0]
                if len(batch) == 1
                else {"type": "room.batch", "origin": self.origin, "messages": batch}
            )
            # Stamped per group message, not per update: one clock read per PUBLISH.
            message["sent_at"] = time.time()
            try:
                await self.layer.group_send(self.group, message)
            except Exception:
                self._stats["publish_failed"] += 1
                if not failing:
                    logger.exception(
                        "Publishing to %s failed", self.group, extra={"group": self.group}
                    )
                failing = True
            else:
                failing = False
            if self._outbox.empty() and not self._deferred:
                self._drained.set()

    async def receive_forever(self) -> None:
        assert self._channel is not None, "join() first"
        while True:
            message = await self.layer.receive(self._channel)
            origin = message.get("origin")
            if origin == self.origin:
                continue  # the pub/sub layer echoes a process's own messages back
            if message.get("type") == BYE:
                self.peers.discard(origin)
                continue
            if origin is not None:  # (documents' views publish without one)
                self.peers.add(origin)
            sent_at = message.get("sent_at")
            if sent_at is not None:
                # Another host's clock may run ahead: a negative hop is counted as 0.
                metrics.FANOUT_SECONDS.observe(max(0.0, time.time() - sent_at))
            batch = message["messages"] if message.get("type") == "room.batch" else [message]
            for item in batch:
                try:
                    self._on_message(item)
                except Exception:
                    logger.exception(
                        "Bad group message on %s", self.group, extra={"group": self.group}
                    )
