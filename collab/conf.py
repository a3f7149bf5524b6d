"""
Tunables of the realtime layer, read lazily from Django settings (never at import time,
so that tests can override them). Defaults live in editor/settings.py, which reads the
COLLAB_* environment variables.
"""

from __future__ import annotations

from django.conf import settings


class Settings:
    @property
    def MAX_MESSAGE_BYTES(self) -> int:
        """Largest frame a client may send; larger ones close the socket with 4413."""
        return int(settings.COLLAB_MAX_MESSAGE_BYTES)

    @property
    def MAX_NESTING_DEPTH(self) -> int:
        """Deepest nesting of JSON/Any content accepted in an update."""
        return int(settings.COLLAB_MAX_NESTING_DEPTH)

    @property
    def ROOM_UNLOAD_DELAY_SECONDS(self) -> float:
        """How long a room stays loaded after its last local socket left."""
        return float(settings.COLLAB_ROOM_UNLOAD_DELAY_SECONDS)

    @property
    def HEAL_INTERVAL_SECONDS(self) -> float:
        """How often rooms compare themselves with the update log to heal lost messages."""
        return float(settings.COLLAB_HEAL_INTERVAL_SECONDS)

    @property
    def ADOPT_AFTER_SECONDS(self) -> float:
        """How long a room waits for another process to confirm it persisted an update
        before persisting it itself (that process may have died)."""
        return float(settings.COLLAB_ADOPT_AFTER_SECONDS)

    @property
    def COMPACT_EVERY(self) -> int:
        """Number of log rows after which the log is folded into the document state."""
        return int(settings.COLLAB_COMPACT_EVERY)

    @property
    def COMMIT_WINDOW_SECONDS(self) -> float:
        """How long a room's journal waits after the first write of a batch for more to
        join it: fewer, larger transactions (and WAL flushes) for a few milliseconds more
        before "saved"."""
        return float(settings.COLLAB_COMMIT_WINDOW_SECONDS)

    @property
    def STORE_RETRY_MAX_SECONDS(self) -> float:
        """Longest pause between retries of a failed database write."""
        return float(settings.COLLAB_STORE_RETRY_MAX_SECONDS)

    @property
    def SEND_QUEUE_LIMIT(self) -> int:
        """Frames queued for one socket before it is closed as too slow."""
        return int(settings.COLLAB_SEND_QUEUE_LIMIT)

    @property
    def MAX_DOCUMENT_BYTES(self) -> int:
        """Approximate size (stored updates) past which a document takes no more writes."""
        return int(settings.COLLAB_MAX_DOCUMENT_BYTES)

    @property
    def MAX_AWARENESS_BYTES(self) -> int:
        """Largest presence state (JSON) a client may publish; larger ones are ignored."""
        return int(settings.COLLAB_MAX_AWARENESS_BYTES)

    @property
    def VIEWER_PRESENCE(self) -> bool:
        """Whether viewers' own carets and names are shown to others."""
        return bool(settings.COLLAB_VIEWER_PRESENCE)

    @property
    def UPDATE_RATE(self) -> tuple[float, float]:
        """(per second, burst) of document updates one socket may send."""
        return (float(settings.COLLAB_UPDATES_PER_SECOND), float(settings.COLLAB_UPDATES_BURST))

    @property
    def FRAME_RATE(self) -> tuple[float, float]:
        """(per second, burst) of frames of any kind one socket may send (flood guard:
        stock clients echo everybody's presence, so this sits well above the others)."""
        return (float(settings.COLLAB_FRAMES_PER_SECOND), float(settings.COLLAB_FRAMES_BURST))

    @property
    def FLOOD_AFTER_SECONDS(self) -> float:
        """How long a socket may be held back by its update or frame budget without a
        break (it is read at the budget's pace meanwhile) before it counts as a flood and
        is closed with 4429: its backlog is at least this many seconds of budget."""
        return float(settings.COLLAB_FLOOD_AFTER_SECONDS)

    @property
    def AWARENESS_RATE(self) -> tuple[float, float]:
        """(per second, burst) of a socket's own presence updates; faster ones are
        coalesced (the newest is sent when the rate allows), not refused."""
        return (
            float(settings.COLLAB_AWARENESS_PER_SECOND),
            float(settings.COLLAB_AWARENESS_BURST),
        )

    @property
    def MAX_SOCKETS_PER_USER(self) -> int:
        """Sockets one user may hold open over all documents and processes (0: no cap);
        the next one is closed with 4409."""
        return int(settings.COLLAB_MAX_SOCKETS_PER_USER)

    @property
    def ACCESS_RECHECK_SECONDS(self) -> float:
        """How often live sockets are checked against sessions and access rules (access
        changes made through the app reach them at once anyway)."""
        return float(settings.COLLAB_ACCESS_RECHECK_SECONDS)

    @property
    def AWARENESS_TIMEOUT_SECONDS(self) -> float:
        """Age after which a remote awareness state that was not renewed is dropped."""
        return float(settings.COLLAB_AWARENESS_TIMEOUT_SECONDS)

    @property
    def VERSIONS_IN_CHILD_PROCESS(self) -> bool:
        """Whether automatic history versions are taken by a child process (True) or a
        thread of the serving process (False: for databases a child cannot share, such
        as in-memory SQLite)."""
        return bool(settings.COLLAB_VERSIONS_IN_CHILD_PROCESS)


conf = Settings()
