"""
Bookkeeping that lets a room notice what the channel layer lost and heal it from the log.

The channel layer delivers at most once. Every room publishes the updates its clients
send at once (`room.update`, numbered per room with `n`) and, after they are committed,
a marker naming the log sequence numbers they got (`room.committed`). A receiving room
confirms a marker when it holds every update the marker names; otherwise it fetches those
rows from the log. Rows it never heard of at all show up as a gap between its watermark
and the document's `last_seq`, which the periodic check heals. A remote update whose
marker never comes (its process died before committing) is adopted: persisted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RemoteUpdate:
    update: bytes
    author_id: int | None
    received_at: float


@dataclass
class SequenceTracker:
    watermark: int
    """Every log row with a sequence number up to this one is applied to the room."""
    _applied: set[int] = field(default_factory=set)
    _unconfirmed: dict[str, dict[int, RemoteUpdate]] = field(default_factory=dict)

    def needs(self, seq: int) -> bool:
        return seq > self.watermark and seq not in self._applied

    def mark_applied(self, first: int, last: int) -> None:
        for seq in range(max(first, self.watermark + 1), last + 1):
            self._applied.add(seq)
        while self.watermark + 1 in self._applied:
            self.watermark += 1
            self._applied.discard(self.watermark)

    def record_remote(self, origin: str, n: int, remote: RemoteUpdate) -> None:
        self._unconfirmed.setdefault(origin, {})[n] = remote

    def confirm(self, origin: str, ns: list[int], first: int, last: int) -> bool:
        """Take a commit marker; True when every update it covers was received here
        (rows `first`..`last` are then applied), False when the rows must be fetched."""
        pending = self._unconfirmed.get(origin, {})
        received = all(n in pending for n in ns)
        for n in ns:
            pending.pop(n, None)
        if not pending:
            self._unconfirmed.pop(origin, None)
        if received and ns and len(ns) == last - first + 1:
            self.mark_applied(first, last)
            return True
        return False

    def take_stale(self, older_than: float) -> list[RemoteUpdate]:
        """Remove and return remote updates received before `older_than` and never
        confirmed, oldest first, so that this room persists them."""
        stale = []
        for origin in list(self._unconfirmed):
            pending = self._unconfirmed[origin]
            for n in sorted(pending):
                if pending[n].received_at < older_than:
                    stale.append(pending.pop(n))
            if not pending:
                del self._unconfirmed[origin]
        stale.sort(key=lambda remote: remote.received_at)
        return stale

    @property
    def unconfirmed_updates(self) -> list[bytes]:
        return [
            remote.update for pending in self._unconfirmed.values() for remote in pending.values()
        ]

    @property
    def unconfirmed_count(self) -> int:
        return sum(len(pending) for pending in self._unconfirmed.values())

    def reset(self, watermark: int) -> None:
        """Forget applied rows above `watermark` (the room was rebuilt from the log)."""
        self.watermark = watermark
        self._applied.clear()
