from __future__ import annotations

from django.apps import AppConfig


class CollabConfig(AppConfig):
    name = "collab"

    def ready(self) -> None:
        # Sign-outs, deactivations, password changes and deletions close live sockets
        # at once, on every process (collab/accounts.py).
        from collab.accounts import connect_signals

        connect_signals()
