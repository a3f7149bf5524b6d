"""
Live documents: one room per (process, open document).

A room holds the pycrdt `Doc`, the awareness table and the local connections. An update
from a local client is validated, applied, sent to the other local connections, published
to the document's channel-layer group for the other processes, and appended to the
journal that commits it. Updates from other processes are applied and forwarded, never
persisted again (unless their process died before committing them: see sequences.py).

Transport-agnostic: a connection is anything with `send(frame)` and `close(code)` that
never block (the consumer queues frames for its socket).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import BaseChannelLayer
from pycrdt import Doc

from collab import metrics, protocol
from collab.conf import conf
from collab.fanout import GroupLink
from collab.journal import Journal, PendingWrite
from collab.limits import TokenBucket
from collab.owners import ClientOwners
from collab.persistence import (
    DocumentGone,
    StoredDocument,
    afetch_missing,
    aload_document,
    astore_state,
)
from collab.protocol import CloseCode, MessageType, RateLimited, SyncStep, TooLarge
from collab.sequences import RemoteUpdate, SequenceTracker
from collab.sessions import standing_now
from yjs.awareness import AwarenessTable, Entry, decode_entries, encode_entries, with_user
from yjs.docs import ApplyFailed, apply, build_doc, is_covered, merge, update_since
from yjs.door import (
    Admitted,
    TrustedUpdate,
    aadmit_update,
    admit_awareness,
    admit_state_vector,
    server_made,
    trusted_peer,
)
from yjs.updates import InvalidUpdate

logger = logging.getLogger(__name__)


class Connection(Protocol):
    user_id: int | None
    presence_user: dict[str, object]
    """The `user` of this socket's presence states, whatever its client writes there."""
    session_key: str | None
    can_write: bool
    extensions: bool

    def send(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    @property
    def closed(self) -> bool: ...


@dataclass(eq=False, slots=True)
class Member:
    """A local connection's standing in the room."""

    connection: Connection
    client_id: int | None = None
    """The awareness client id this connection speaks for: the first one it announced
    that was not another user's (see owners.py)."""
    writes_received: int = 0
    writes_committed: int = 0
    denied_notice_sent: bool = False
    update_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(*conf.UPDATE_RATE))
    presence_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(*conf.AWARENESS_RATE))
    frame_bucket: TokenBucket = field(default_factory=lambda: TokenBucket(*conf.FRAME_RATE))
    flood_after: float = field(default_factory=lambda: conf.FLOOD_AFTER_SECONDS)
    """Seconds a socket may be held back by its budgets without a break (see _hold_back)."""
    held_presence: list[Entry] | None = None
    """The newest own presence that came faster than the presence rate; sent later."""


def group_name(document_id: uuid.UUID) -> str:
    # Built from the UUID, never from user text (group names allow [a-z0-9._-] only).
    return f"document.{document_id.hex}"


def _merged_frames(updates: list[Admitted]) -> list[bytes]:
    """Sync-update frames holding `updates`: one, unless pycrdt cannot merge them."""
    if len(updates) <= 1:
        return [protocol.sync_update(update) for update in updates]
    try:
        return [protocol.sync_update(merge(updates))]
    except Exception:
        # Every update here was applied already, so this is not expected; if it
        # happens, the updates still go out, one frame each.
        logger.exception("Merging %d updates failed; sending them one by one", len(updates))
        return [protocol.sync_update(update) for update in updates]


class Room:
    def __init__(self, document_id: uuid.UUID, layer: BaseChannelLayer | None) -> None:
        self.document_id = document_id
        self.group = group_name(document_id)
        self.origin = uuid.uuid4().hex
        self.doc = Doc()
        self.pending: list[bytes] = []
        """Updates the doc holds but has not integrated yet (see yjs/docs.py)."""
        self.awareness = AwarenessTable()
        self.owners = ClientOwners()
        self.members: dict[Connection, Member] = {}
        self.sequences = SequenceTracker(watermark=0)
        self.journal = Journal(document_id, on_committed=self._committed, on_gone=self.gone)
        self.stats: Counter[str] = Counter()
        self.closed = False
        self.lag_seen = 0
        """The document's last_seq at the previous periodic check (see RoomRegistry)."""
        self._link = (
            GroupLink(
                layer,
                self.group,
                origin=self.origin,
                on_message=self._on_group_message,
                stats=self.stats,
            )
            if layer is not None
            else None
        )
        self._published = 0
        self._outgoing: list[tuple[Connection | None, Admitted]] = []
        """Updates to send to local connections at the end of this loop turn, each with
        the connection it came from (None: another process or the log)."""
        self._counted = False
        self._compacted_through = 0
        self.approx_bytes = 0
        # Read once per room, not per update (settings lookups show in profiles).
        self._max_depth = conf.MAX_NESTING_DEPTH
        self._max_document_bytes = conf.MAX_DOCUMENT_BYTES
        self._max_presence_bytes = conf.MAX_AWARENESS_BYTES
        self._presence_delay = 1 / conf.AWARENESS_RATE[0]
        self._viewer_presence = conf.VIEWER_PRESENCE
        """Stored bytes of the document, roughly: what the size limit is checked against."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heal_task: asyncio.Task[None] | None = None
        self._compact_task: asyncio.Task[None] | None = None
        self._recheck_task: asyncio.Task[None] | None = None
        self.rechecked_at = time.monotonic()
        self._rebuild_lock = asyncio.Lock()
        self.rebuilding: asyncio.Task[None] | None = None
        self.loaded = False
        self._heal_after_load = False
        """Set when the group told of log rows before the load: the load may predate them."""

    # Lifecycle

    async def start(self) -> None:
        """Subscribe to the document's group, then load it: whatever is published
        between the two is either in the load or arrives afterwards."""
        if self._link is not None:
            await self._link.join()
            self._spawn(self._link.receive_forever())
            self._spawn(self._link.publish_forever())
        stored = await aload_document(self.document_id)
        self._load(stored)
        self._spawn(self.journal.run())
        metrics.ROOMS.inc()
        self._counted = True

    def _load(self, stored: StoredDocument) -> None:
        # Remote updates that arrived during the load went into the doc being replaced.
        self.doc, self.pending = build_doc(
            stored.updates + self.sequences.unconfirmed_updates,
            self.document_id,
            state_first=stored.has_state,
        )
        self.approx_bytes = sum(len(update) for update in stored.updates)
        self.sequences.reset(stored.watermark)
        self._compacted_through = stored.state_seq
        self.loaded = True
        if self._heal_after_load:
            self.heal_soon()

    async def stop(self) -> None:
        self.closed = True
        if self._counted:
            metrics.ROOMS.dec()
            self._counted = False
        if self._link is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._link.flush()
            except TimeoutError:
                logger.warning(
                    "Document %s stopped with group messages unsent (receivers heal)",
                    self.document_id,
                    extra={"document_id": self.document_id},
                )
            await self._link.leave()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Persist everything this room still holds that is not known to be stored:
        its own pending writes and remote updates whose commit was never confirmed."""
        for remote in self.sequences.take_stale(older_than=float("inf")):
            self._adopt(remote)
        await self.journal.drained()

    def gone(self) -> None:
        """The document was deleted: close every socket and stop serving it."""
        self.closed = True
        for connection in list(self.members):
            connection.close(CloseCode.DOCUMENT_GONE)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "Background task of room %s failed",
                self.document_id,
                exc_info=task.exception(),
                extra={"document_id": self.document_id},
            )

    # Local connections

    def add(self, connection: Connection) -> None:
        self.members[connection] = Member(connection)
        connection.send(protocol.sync_step1(self.doc.get_state()))
        snapshot = self.awareness.snapshot()
        if snapshot is not None:
            connection.send(protocol.awareness(snapshot))

    def remove(self, connection: Connection) -> None:
        member = self.members.pop(connection, None)
        if member is None or member.client_id is None:
            return
        self.owners.release(member.client_id)
        if self.owners.held(member.client_id):
            return  # its client came back on another socket, which speaks for it now
        removal = self.awareness.remove([member.client_id])
        if removal is not None:
            self._spread_awareness(
                removal, publish=True, owner=(member.client_id, connection.user_id)
            )

    async def receive(self, connection: Connection, frame: bytes) -> None:
        """Handle one frame from a local socket; `ProtocolError` if it is malformed."""
        member = self.members.get(connection)
        if member is None:
            return
        now = time.monotonic()
        wait = member.frame_bucket.reserve(now)
        message = protocol.parse_message(frame)
        if message.is_write:
            wait = max(wait, member.update_bucket.reserve(now))
        if wait:
            await self._hold_back(member, now, wait)
            if connection.closed or self.members.get(connection) is not member:
                return  # closed or gone meanwhile: what it sent no longer counts
        if message.type is MessageType.SYNC:
            if message.step is SyncStep.STEP1:
                state_vector = admit_state_vector(message.payload)
                connection.send(protocol.sync_step2(update_since(self.doc, state_vector)))
            else:
                await self._receive_write(member, message.payload)
        elif message.type is MessageType.AWARENESS:
            self._receive_awareness(member, message.payload)
        else:
            snapshot = self.awareness.snapshot()
            if snapshot is not None:
                connection.send(protocol.awareness(snapshot))

    async def _hold_back(self, member: Member, now: float, wait: float) -> None:
        """Wait until the frame is within its socket's budget. Its consumer reads
        nothing meanwhile, so the client's next frames wait in TCP buffers and TCP slows
        the client down (collab/websocket_protocol.py keeps the server's read-ahead
        small): a fast client is slowed, not dropped. Only one held back without a
        break for `flood_after` seconds is refused, as a flood."""
        behind = max(member.frame_bucket.behind(now), member.update_bucket.behind(now))
        if behind > member.flood_after:
            raise RateLimited(f"over its budget for {behind:.0f} s without a break")
        metrics.THROTTLED_SECONDS.inc(wait)
        await asyncio.sleep(wait)

    async def _receive_write(self, member: Member, update: bytes) -> None:
        connection = member.connection
        if not connection.can_write:
            # Through the door like any write, before anything looks inside it: a
            # malformed frame closes the socket (4400), and pycrdt never sees bytes
            # that did not pass (a reader's nested update once killed the process here).
            checked = (
                None
                if update == protocol.EMPTY_UPDATE
                else await aadmit_update(update, max_depth=self._max_depth)
            )
            if checked is None or is_covered(checked, self.doc.get_state()):
                # A reader's reply to the server's step 1 holds nothing new: nothing to
                # refuse (it is never applied either way), so it is acknowledged.
                member.writes_received += 1
                self.journal.append(PendingWrite(None, connection.user_id, member))
                return
            self.stats["dropped_writes"] += 1
            metrics.DROPPED_WRITES.inc()
            if not member.denied_notice_sent:
                logger.warning(
                    "Dropped a write from read-only user %s on document %s",
                    connection.user_id,
                    self.document_id,
                    extra={"document_id": self.document_id, "user_id": connection.user_id},
                )
                member.denied_notice_sent = True
                connection.send(protocol.permission_denied("read-only"))
            return
        member.writes_received += 1
        if update == protocol.EMPTY_UPDATE:
            # Nothing to store, but it is acknowledged in order with the others.
            self.journal.append(PendingWrite(None, connection.user_id, member))
            return
        if self.approx_bytes + len(update) > self._max_document_bytes:
            connection.send(protocol.permission_denied("document too large"))
            raise TooLarge("the document is at its size limit")
        update = await aadmit_update(update, max_depth=self._max_depth)
        try:
            apply(self.doc, update, self.pending)
        except ApplyFailed as exc:
            logger.error(
                "Update on document %s failed part way (%s); rebuilding",
                self.document_id,
                exc,
                extra={"document_id": self.document_id, "user_id": connection.user_id},
            )
            self.rebuild_soon()
            raise InvalidUpdate("update could not be applied") from None
        self.approx_bytes += len(update)
        self._broadcast(update, connection)
        self._published += 1
        self._publish(
            {
                "type": "room.update",
                "n": self._published,
                "update": update,
                "author": connection.user_id,
            }
        )
        self.journal.append(PendingWrite(update, connection.user_id, member, self._published))
        self.stats["updates"] += 1
        metrics.UPDATES.inc()

    def _broadcast(self, update: Admitted, sender: Connection | None) -> None:
        """Send an update to every local connection but its sender once this loop turn
        ends: what arrives in the same turn goes out as one merged frame per socket.
        Idle, that adds no delay (the turn ends at once); busy, the sends per socket
        follow loop turns instead of updates, which is what keeps a saturated room from
        falling further behind (a send costs more than a merge)."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush_outgoing)
        self._outgoing.append((sender, update))

    def _flush_outgoing(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if len(outgoing) == 1:
            sender, update = outgoing[0]
            frame = protocol.sync_update(update)
            for connection in self.members:
                if connection is not sender:
                    connection.send(frame)
            return
        senders = {sender for sender, _ in outgoing}
        frames: dict[Connection | None, list[bytes]] = {}
        for connection in self.members:
            # A sender gets everything but its own updates, as it would unmerged.
            key = connection if connection in senders else None
            if key not in frames:
                frames[key] = _merged_frames(
                    [update for s, update in outgoing if key is None or s is not key]
                )
            for frame in frames[key]:
                connection.send(frame)

    def _receive_awareness(self, member: Member, payload: bytes) -> None:
        entries = admit_awareness(payload)
        if member.client_id is None:
            user_id = member.connection.user_id
            member.client_id = next(
                (e.client_id for e in entries if self.owners.claim(e.client_id, user_id)), None
            )
        # y-websocket clients echo other clients' states back; only a connection's own
        # entry is taken from it, so nobody can speak for somebody else's cursor.
        own = [
            entry
            for entry in entries
            if entry.client_id == member.client_id and len(entry.state) <= self._max_presence_bytes
        ]
        if not own:
            return
        if not member.presence_bucket.take():
            # Cursors move faster than anyone needs to see: keep the newest, send it
            # once the rate allows, never close a socket over it.
            if member.held_presence is None:
                asyncio.get_running_loop().call_later(
                    self._presence_delay, self._release_presence, member
                )
            member.held_presence = own
            self.stats["presence_coalesced"] += 1
            return
        self._publish_presence(member, own)

    def _release_presence(self, member: Member) -> None:
        held, member.held_presence = member.held_presence, None
        if held is not None and member.connection in self.members:
            self._publish_presence(member, held)

    def _publish_presence(self, member: Member, own: list[Entry]) -> None:
        # Rewritten here, not per frame received: coalesced frames never get this far.
        user = member.connection.presence_user
        own = [entry for entry in (with_user(e, user) for e in own) if entry is not None]
        if not own:
            return
        update = encode_entries(own)
        if not member.connection.can_write and not self._viewer_presence:
            # Hidden from others, but echoed: y-websocket clients that hear nothing
            # for 30 seconds reconnect.
            member.connection.send(protocol.awareness(update))
            return
        self.awareness.apply(own)
        self._spread_awareness(
            update, publish=True, owner=(own[0].client_id, member.connection.user_id)
        )

    def expire_presence(self, client_ids: list[int]) -> None:
        """Drop presence nobody renewed and tell the local clients, or they show it until
        their own timeout. Not published: every process runs this check on its own table."""
        removal = self.awareness.remove(client_ids)
        if removal is not None:
            self._spread_awareness(removal, publish=False)

    def _spread_awareness(
        self, update: bytes, *, publish: bool, owner: tuple[int, int | None] | None = None
    ) -> None:
        """`owner`: the client id of a local socket's presence and its user, which the
        other processes hold that id to (see owners.py)."""
        # Sent back to its sender too: y-websocket clients treat it as a keep-alive.
        frame = protocol.awareness(update)
        for connection in self.members:
            connection.send(frame)
        if publish:
            message: dict[str, Any] = {"type": "room.awareness", "update": update}
            if owner is not None:
                message["owners"] = [owner]
            self._publish(message)

    def _receive_remote_awareness(self, message: dict[str, Any]) -> None:
        update = message["update"]
        entries = decode_entries(update)
        # Whose each id is, as the sender's process knows it. Another process's word
        # does not override this one's: an id one of them holds to another user (a
        # claim in both at once, or a process that forgot) is left out here.
        refused = {
            client_id
            for client_id, user_id in message.get("owners", ())
            if not self.owners.learn(client_id, user_id)
        }
        if refused:
            self.stats["presence_refused"] += len(refused)
            entries = [entry for entry in entries if entry.client_id not in refused]
            update = encode_entries(entries)
        if entries:
            self.awareness.apply(entries)
            self._spread_awareness(update, publish=False)

    # Persistence callbacks

    def _committed(self, batch: list[PendingWrite], first: int, last: int) -> None:
        told: dict[int, Member] = {}
        for write in batch:
            if write.member is not None:
                write.member.writes_committed += 1
                told[id(write.member)] = write.member
        if last >= first:
            self.sequences.mark_applied(first, last)
            ns = [write.n for write in batch if write.update is not None and write.n is not None]
            # Nobody waits for a marker: it rides along with the next update.
            self._publish(
                {"type": "room.committed", "ns": ns, "first": first, "last": last},
                urgent=False,
            )
            self._maybe_compact(last)
        for member in told.values():
            if member.connection.extensions and member.connection in self.members:
                member.connection.send(protocol.saved(member.writes_committed))

    def _adopt(self, remote: RemoteUpdate) -> None:
        self.stats["adopted"] += 1
        metrics.ADOPTED.inc()
        self.journal.append(PendingWrite(remote.update, remote.author_id))

    def adopt_stale(self) -> None:
        for remote in self.sequences.take_stale(time.monotonic() - conf.ADOPT_AFTER_SECONDS):
            logger.warning(
                "An update of document %s was never confirmed as stored; storing it here",
                self.document_id,
                extra={"document_id": self.document_id},
            )
            self._adopt(remote)

    def _maybe_compact(self, last_seq: int) -> None:
        if last_seq - self._compacted_through < conf.COMPACT_EVERY:
            return
        if self._compact_task is not None and not self._compact_task.done():
            return
        self._compacted_through = last_seq
        self._compact_task = self._spawn(self._compact())

    async def _compact(self) -> None:
        if self.rebuilding is not None and not self.rebuilding.done():
            return  # the doc is not to be trusted until rebuilt
        # The live doc holds every row up to the watermark: no rebuild from the log.
        state, state_vector = self.doc.get_update(), self.doc.get_state()
        try:
            result = await astore_state(
                self.document_id, state, state_vector, self.sequences.watermark
            )
        except DocumentGone:
            return
        except Exception:
            logger.exception(
                "Compacting document %s failed",
                self.document_id,
                extra={"document_id": self.document_id},
            )
            return
        self.approx_bytes = result.state_bytes
        logger.info(
            "Compacted document %s: %d rows folded, %d kept, state %d bytes",
            self.document_id,
            result.folded,
            result.kept,
            result.state_bytes,
        )

    # Other processes

    def _publish(self, message: dict[str, Any], *, urgent: bool = True) -> None:
        if self._link is not None:
            self._link.publish(message, urgent=urgent)

    def _on_group_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("room.update", "room.committed") and not self.loaded:
            self._heal_after_load = True
        if kind == "room.update":
            update = trusted_peer(message["update"])
            self.sequences.record_remote(
                message["origin"],
                message["n"],
                RemoteUpdate(update, message.get("author"), time.monotonic()),
            )
            self._apply_remote(update)
        elif kind == "room.committed":
            if not self.sequences.confirm(
                message["origin"], message["ns"], message["first"], message["last"]
            ):
                self.heal_soon()
            self._maybe_compact(message["last"])
        elif kind == "room.hello":
            # Tell the newcomer how far the log goes: rows this room committed while it
            # was alone (and published nothing) may be newer than the newcomer's load.
            self._publish({"type": "room.here", "last": self.sequences.watermark})
            # And who is here: the newcomer's clients would otherwise see presence only at
            # its next change or renewal (up to 15 s), more so as a room alone publishes none.
            # With whose every remembered client id is, present or away: the newcomer's
            # sockets must not take the id of a client that is reconnecting.
            snapshot = self.awareness.snapshot()
            owners = self.owners.known()
            if snapshot is not None or owners:
                update = snapshot if snapshot is not None else encode_entries([])
                self._publish({"type": "room.awareness", "update": update, "owners": owners})
        elif kind == "room.here":
            if message["last"] > self.sequences.watermark:
                if self.loaded:
                    self.heal_soon()
                else:
                    self._heal_after_load = True
        elif kind == "room.access":
            self.recheck_soon()
        elif kind == "room.title":
            frame = protocol.title(message["title"])
            for connection in self.members:
                if connection.extensions:
                    connection.send(frame)
        elif kind == "room.awareness":
            self._receive_remote_awareness(message)

    def _apply_remote(self, update: TrustedUpdate) -> None:
        try:
            apply(self.doc, update, self.pending)
        except (InvalidUpdate, ApplyFailed) as exc:
            logger.error(
                "Remote update for %s failed (%s); rebuilding",
                self.document_id,
                exc,
                extra={"document_id": self.document_id},
            )
            self.rebuild_soon()
            return
        self._broadcast(update, None)

    # Access

    def recheck_soon(self) -> None:
        if self._recheck_task is None or self._recheck_task.done():
            self._recheck_task = self._spawn(self.recheck_access())

    async def recheck_access(self) -> None:
        """Bring live sockets in line with access rules and sessions: close those that
        lost access (4403) or were signed out (4401), downgrade or upgrade the rest."""
        self.rechecked_at = time.monotonic()
        connections = list(self.members)
        if not connections:
            return
        sessions = {c.session_key: c.user_id for c in connections if c.session_key and c.user_id}
        user_ids = {c.user_id for c in connections if c.user_id is not None}
        access, alive = await standing_now(self.document_id, sessions, user_ids)
        writers, readers = access if access is not None else (set(), set())
        for connection in connections:
            if connection not in self.members:
                continue
            if access is None:
                connection.close(CloseCode.DOCUMENT_GONE, "document deleted")
            elif connection.session_key is not None and connection.session_key not in alive:
                connection.close(CloseCode.NOT_SIGNED_IN, "signed out")
            elif connection.user_id not in readers:
                connection.close(CloseCode.ACCESS_REVOKED, "access revoked")
            else:
                connection.can_write = connection.user_id in writers

    # Healing

    def heal_soon(self) -> None:
        if self._heal_task is None or self._heal_task.done():
            self._heal_task = self._spawn(self.heal())

    async def heal(self) -> None:
        """Apply what the log has and this room lacks, and pass it on to local clients."""
        watermark = self.sequences.watermark
        missing = await afetch_missing(self.document_id, watermark)
        before = self.doc.get_state()
        applied = 0
        for seq, update in missing.updates:
            if seq is not None and not self.sequences.needs(seq):
                continue
            try:
                apply(self.doc, update, self.pending)
            except (InvalidUpdate, ApplyFailed):
                logger.error("Stored update %s of %s does not apply", seq, self.document_id)
            applied += 1
        if missing.state_seq > watermark:
            self.sequences.mark_applied(watermark + 1, missing.state_seq)
        for seq, _ in missing.updates:
            if seq is not None:
                self.sequences.mark_applied(seq, seq)
        if applied:
            self.stats["healed"] += applied
            metrics.HEALED.inc(applied)
            logger.info(
                "Healed %d updates of document %s from the log",
                applied,
                self.document_id,
                extra={"document_id": self.document_id, "count": applied},
            )
            self._broadcast(server_made(self.doc.get_update(before)), None)

    def rebuild_soon(self) -> asyncio.Task[None]:
        if self.rebuilding is None or self.rebuilding.done():
            self.rebuilding = self._spawn(self.rebuild())
        return self.rebuilding

    async def rebuild(self) -> None:
        """Replace a doc that a failed apply left untrustworthy with one built from
        the log plus everything this room holds that is not stored yet."""
        async with self._rebuild_lock:
            self.stats["rebuilds"] += 1
            stored = await aload_document(self.document_id)
            pending = self.journal.pending_updates + self.sequences.unconfirmed_updates
            self.doc, self.pending = build_doc(
                stored.updates + pending, self.document_id, state_first=stored.has_state
            )
            self.sequences.reset(stored.watermark)
            step1 = protocol.sync_step1(self.doc.get_state())
            for connection in self.members:
                # Clients push back whatever the rebuilt doc lacks.
                connection.send(step1)
        await self.heal()
