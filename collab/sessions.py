"""Whether the sessions behind live sockets are still signed in as the same person."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY


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
