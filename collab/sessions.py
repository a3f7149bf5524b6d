"""Whether a room's live sockets may stay open: their sessions and the access rules."""

from __future__ import annotations

import uuid
from importlib import import_module

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY

from documents.access import writers_and_readers


def signed_in(sessions: dict[str, int]) -> set[str]:
    """Of the session keys given (each with the user id its socket authenticated as),
    those that still exist, have not expired and belong to that user. A sign-out
    elsewhere flushes the session; an expired one no longer loads."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    alive = set()
    for key, user_id in sessions.items():
        data = store_class(session_key=key).load()
        if data.get(SESSION_KEY) == str(user_id):
            alive.add(key)
    return alive


@database_sync_to_async
def standing_now(
    document_id: uuid.UUID, sessions: dict[str, int], user_ids: set[int]
) -> tuple[tuple[set[int], set[int]] | None, set[str]]:
    """Who of `user_ids` may write and read the document (None when it is gone or in
    the trash), and which sessions are still signed in."""
    return writers_and_readers(document_id, user_ids), signed_in(sessions)
