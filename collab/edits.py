"""
Changes made on the server rather than in a live editor (restoring a version, imports).

They go through the update log like any client edit, and every process's room is told
through the document's group to catch up from the log, exactly as it heals a lost
message. Call `store_server_update` inside the view's transaction: rooms hear of the
update only once that transaction commits.
"""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from collab.persistence import append_updates
from collab.rooms import group_name
from yjs.door import admit_update

logger = logging.getLogger(__name__)


SERVER_UPDATE_MAX_DEPTH = 10_000
"""Deepest nesting a server-side change may hold: a restore copies a version, which may
be older than the live limit (COLLAB_MAX_NESTING_DEPTH), and rooms apply stored rows on
the event loop's main thread, whose stack holds ~26,000 levels (pycrdt-facts.md)."""


def store_server_update(
    document_id: uuid.UUID,
    update: bytes,
    *,
    author_id: int | None,
    max_depth: int = SERVER_UPDATE_MAX_DEPTH,
) -> int:
    """Append `update` to the document's log; return its sequence number. The update
    goes through the door like a client's (the log holds nothing else; see
    yjs/door.py): `InvalidUpdate` with nothing stored if it is refused. A change made
    of what a client sent (an import, an API write) passes the live limit,
    `conf.MAX_NESTING_DEPTH`, as `max_depth`."""
    checked = admit_update(update, max_depth=max_depth)
    first, last = append_updates(document_id, [(checked, author_id)])
    transaction.on_commit(lambda: notify_rooms(document_id, first, last))
    return last


def notify_rooms(document_id: uuid.UUID, first: int, last: int) -> None:
    """Tell every live room of the document that log rows `first`..`last` exist.
    (Rooms would still find them at their next periodic check.)"""
    _send(document_id, {"type": "room.committed", "ns": [], "first": first, "last": last})


def notify_title(document_id: uuid.UUID, title: str) -> None:
    """Tell the open editors of the document (on every process) its new title.
    Call it from `transaction.on_commit`."""
    _send(document_id, {"type": "room.title", "title": title})


def notify_access_changed(document_id: uuid.UUID) -> None:
    """Tell the document's live rooms (on every process) to re-check who may read and
    write it. Call it from `transaction.on_commit`."""
    _send(document_id, {"type": "room.access"})


def _send(document_id: uuid.UUID, message: dict[str, object]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(document_id), {"origin": "server", **message})
    except Exception:
        logger.exception(
            "Telling rooms of document %s about a server change failed",
            document_id,
            extra={"document_id": document_id},
        )
