"""
The live rooms of this process: each document loaded once however many sockets join at
the same moment, unloaded after a grace period once its last socket left (after storing
everything it holds), and checked periodically against the update log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

from collab import memory
from collab.accounts import AccountWatch
from collab.conf import conf
from collab.persistence import DocumentGone, alast_seqs
from collab.rooms import Connection, Room
from collab.socket_cap import socket_counts
from collab.version_process import VersionProcess
from documents.history import due_documents, take_due_versions

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RoomRegistry:
    """The live rooms of this process: loaded once, unloaded after a grace period."""

    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, Room] = {}
        self._loading: dict[uuid.UUID, asyncio.Future[Room]] = {}
        self._unloading: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._versions: asyncio.Task[int] | None = None
        self.version_process = VersionProcess()
        self._unloaded = 0
        """Rooms unloaded since memory was last given back."""
        self.accounts = AccountWatch(self.rooms.values)
        """Account changes (sign-outs, deactivations) closing this process's sockets."""

    async def join(self, document_id: uuid.UUID, connection: Connection) -> Room:
        self._ensure_ticker()
        await self.accounts.ensure()
        room = self.rooms.get(document_id)
        if room is None:
            room = await self._load(document_id)
        if room.closed:
            raise DocumentGone(document_id)
        unload = self._unloading.pop(document_id, None)
        if unload is not None:
            unload.cancel()
        room.add(connection)
        self.accounts.joined(connection)  # type: ignore[arg-type]
        return room

    async def _load(self, document_id: uuid.UUID) -> Room:
        future = self._loading.get(document_id)
        if future is not None:
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._loading[document_id] = future
        room = Room(document_id, get_channel_layer())
        try:
            await room.start()
        except BaseException as exc:
            del self._loading[document_id]
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            await room.stop()
            raise
        del self._loading[document_id]
        self.rooms[document_id] = room
        future.set_result(room)
        return room

    def leave(self, room: Room, connection: Connection) -> None:
        room.remove(connection)
        if (
            not room.members
            and self.rooms.get(room.document_id) is room
            and room.document_id not in self._unloading
        ):
            task = asyncio.ensure_future(self._unload_later(room))
            self._unloading[room.document_id] = task

    async def _unload_later(self, room: Room) -> None:
        try:
            if not room.closed:
                await asyncio.sleep(conf.ROOM_UNLOAD_DELAY_SECONDS)
                await room.settle()
        finally:
            if self._unloading.get(room.document_id) is asyncio.current_task():
                del self._unloading[room.document_id]
        if room.members:
            return
        if self.rooms.get(room.document_id) is room:
            del self.rooms[room.document_id]
        await room.stop()
        self._unloaded += 1

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(conf.HEAL_INTERVAL_SECONDS)
            try:
                await self.tick()
            except Exception:
                logger.exception("Periodic room check failed")
            self.give_back_memory()

    def give_back_memory(self) -> None:
        """Once rooms have unloaded, hand their memory back to the OS (a few ms), with a
        full collection first when no room is left to be held up by it."""
        if self._unloaded:
            self._unloaded = 0
            memory.give_back(collect=not self.rooms and not self._loading)

    async def tick(self) -> None:
        """Heal rooms that lag behind the log, adopt unconfirmed updates, drop stale
        presence. One query for all rooms of the process."""
        rooms = [room for room in self.rooms.values() if not room.closed]
        if not rooms:
            return
        last_seqs = await alast_seqs([room.document_id for room in rooms])
        for room in rooms:
            if room.document_id not in last_seqs:
                room.gone()
                continue
            # Only a lag that outlived a whole interval counts: markers of commits in
            # flight arrive within milliseconds.
            if room.sequences.watermark < room.lag_seen:
                room.heal_soon()
            room.lag_seen = last_seqs[room.document_id]
            room.adopt_stale()
            if time.monotonic() - room.rechecked_at >= conf.ACCESS_RECHECK_SECONDS:
                room.recheck_soon()
            keep = {m.client_id for m in room.members.values() if m.client_id is not None}
            stale = room.awareness.stale(conf.AWARENESS_TIMEOUT_SECONDS, keep=keep)
            if stale:
                room.expire_presence(stale)
        self._take_versions_soon(list(last_seqs))

    def _take_versions_soon(self, document_ids: list[uuid.UUID]) -> None:
        """Automatic history versions of the open documents (one query when none is
        due), one run at a time, never holding up the tick."""
        if self._versions is None or self._versions.done():
            self._versions = asyncio.ensure_future(self._atake_due_versions(document_ids))

    async def _atake_due_versions(self, document_ids: list[uuid.UUID]) -> int:
        in_thread = sync_to_async(_closing_connections, thread_sensitive=False)
        try:
            if not conf.VERSIONS_IN_CHILD_PROCESS:
                # Holds this process's GIL for tens of ms at a time on a big document.
                return await in_thread(take_due_versions, document_ids)
            due = await in_thread(due_documents, document_ids)
            return await self.version_process.take(due) if due else 0
        except Exception:
            logger.exception("Taking automatic versions failed")
            return 0

    async def aclose_all(self) -> None:
        """Flush and stop every room, stop the versions' child process and take this
        process's socket counts out of Redis (process shutdown, tests)."""
        for task in (self._ticker, self._versions):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._ticker = self._versions = None
        await self.accounts.aclose()
        # A version in progress finishes (within a bound) while the rooms store theirs.
        stopping = asyncio.ensure_future(self.version_process.aclose())
        try:
            await self._close_rooms()
        finally:
            await stopping
            await socket_counts.aclose()

    async def _close_rooms(self) -> None:
        for task in self._unloading.values():
            task.cancel()
        await asyncio.gather(*self._unloading.values(), return_exceptions=True)
        self._unloading.clear()
        rooms = list(self.rooms.values())
        self.rooms.clear()
        for room in rooms:
            try:
                await asyncio.wait_for(room.settle(), timeout=10)
            except Exception:
                logger.exception(
                    "Room %s could not store all it holds",
                    room.document_id,
                    extra={"document_id": room.document_id},
                )
            await room.stop()


def _closing_connections(function: Callable[[list[uuid.UUID]], T], ids: list[uuid.UUID]) -> T:
    # Runs in a thread of its own, not Django's database thread: it must not hold up the
    # commits of edits queued behind it. Nothing else closes this thread's connection.
    try:
        return function(ids)
    finally:
        connections.close_all()


registry = RoomRegistry()
