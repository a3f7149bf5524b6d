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
from collab.updates import check_update

logger = logging.getLogger(__name__)


def store_server_update(document_id: uuid.UUID, update: bytes, *, author_id: int | None) -> int:
    """Append `update` to the document's log; return its sequence number."""
    check_update(update, max_depth=10_000)
    first, last = append_updates(document_id, [(update, author_id)])
    transaction.on_commit(lambda: notify_rooms(document_id, first, last))
    return last


def notify_rooms(document_id: uuid.UUID, first: int, last: int) -> None:
    """Tell every live room of the document that log rows `first`..`last` exist."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "room.committed", "origin": "server", "ns": [], "first": first, "last": last}
    try:
        async_to_sync(layer.group_send)(group_name(document_id), message)
    except Exception:
        # Rooms still find the rows at their next periodic check.
        logger.exception("Telling rooms of document %s about a server edit failed", document_id)
