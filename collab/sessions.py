"""Whether a room's live sockets may stay open: their sessions and the access rules."""

from __future__ import annotations

import uuid
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.utils.crypto import constant_time_compare

from documents.access import writers_and_readers


def signed_in(sessions: dict[str, int]) -> set[str]:
    """Of the session keys given (each with the user id its socket authenticated as),
    those a request would still be signed in with, by Django's own rules: the session
    exists, has not expired and names that user through a configured backend, which
    still returns the user (an inactive or deleted one it does not), and the session's
    auth hash matches the user's (a password change alters it). A sign-out flushes the
    session."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    users: dict[tuple[str, Any], Any] = {}
    alive = set()
    for key, user_id in sessions.items():
        data = store_class(session_key=key).load()
        if data.get(SESSION_KEY) != str(user_id):
            continue
        backend_path = data.get(BACKEND_SESSION_KEY)
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            continue
        # Several sessions (and tabs) of one person cost one user query.
        if (backend_path, user_id) not in users:
            pk = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
            users[backend_path, user_id] = load_backend(backend_path).get_user(pk)
        user = users[backend_path, user_id]
        if user is not None and _hash_matches(user, data.get(HASH_SESSION_KEY)):
            alive.add(key)
    return alive


def _hash_matches(user: Any, session_hash: str | None) -> bool:
    """django.contrib.auth.get_user's verification, without its side effects (it flushes
    a session that fails, or re-keys one that matched a SECRET_KEY_FALLBACKS hash)."""
    if not hasattr(user, "get_session_auth_hash"):
        return True
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )


asigned_in = database_sync_to_async(signed_in)


@database_sync_to_async
def standing_now(
    document_id: uuid.UUID, sessions: dict[str, int], user_ids: set[int]
) -> tuple[tuple[set[int], set[int]] | None, set[str]]:
    """Who of `user_ids` may write and read the document (None when it is gone or in
    the trash), and which sessions are still signed in."""
    return writers_and_readers(document_id, user_ids), signed_in(sessions)
