"""
Who each awareness client id of a room belongs to.

A y-protocols client picks a random 32-bit client id per Doc and keeps it across
reconnects: coming back, it announces the id it had. If another user's socket could take
that id while the client is away, the real client's presence would be ignored when it
returns (a socket speaks only for the id it claimed). So a room remembers the user of
every client id its sockets claimed or other processes told it of, and refuses the id to
anybody else for `KEEP_SECONDS` after it was last seen.

The table is bounded: at most `PER_USER` entries per user (a user who claims more, by
reconnecting over and over with new ids, pushes out their own oldest, never somebody
else's) and `LIMIT` in all, oldest out first. Ids held by a socket of this process are
never pushed out; there are no more of them than sockets.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable

KEEP_SECONDS = 24 * 3600.0
"""How long a client id stays its user's after it was last seen: a working day, beyond
any reconnect of a laptop that slept."""
PER_USER = 8
LIMIT = 256

UserId = int | None


class ClientOwners:
    def __init__(
        self,
        *,
        keep_seconds: float = KEEP_SECONDS,
        per_user: int = PER_USER,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep = keep_seconds
        self._per_user = per_user
        self._limit = limit
        self._clock = clock
        self._entries: OrderedDict[int, tuple[UserId, float]] = OrderedDict()
        """client id -> (user, last seen); least recently seen first."""
        self._held: Counter[int] = Counter()
        """client id -> the sockets of this process that speak for it."""
        self._counts: Counter[UserId] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, client_id: int, user_id: UserId) -> bool:
        """A local socket of `user_id` speaks for `client_id` from now on, unless the id
        is another user's. The same user may take it back (a reconnecting client)."""
        return self._record(client_id, user_id, hold=True)

    def release(self, client_id: int) -> None:
        """A socket that claimed `client_id` is gone; the id stays its user's for
        `KEEP_SECONDS` from now."""
        held = self._held.get(client_id, 0) - 1
        if held > 0:
            self._held[client_id] = held
            return
        self._held.pop(client_id, None)
        entry = self._entries.get(client_id)
        if entry is not None:
            self._entries[client_id] = (entry[0], self._clock())
            self._entries.move_to_end(client_id)

    def held(self, client_id: int) -> bool:
        """Whether a socket of this process speaks for `client_id`."""
        return client_id in self._held

    def learn(self, client_id: int, user_id: UserId) -> bool:
        """Another process says a socket of `user_id` speaks for `client_id`. False if
        this process knows the id as another user's: the first claim stands."""
        return self._record(client_id, user_id, hold=False)

    def known(self) -> list[tuple[int, UserId]]:
        """Every client id whose user is remembered, with that user."""
        now = self._clock()
        return [
            (client_id, user_id)
            for client_id, (user_id, seen) in self._entries.items()
            if client_id in self._held or now - seen <= self._keep
        ]

    def _record(self, client_id: int, user_id: UserId, *, hold: bool) -> bool:
        now = self._clock()
        entry = self._entries.get(client_id)
        if entry is not None:
            owner, seen = entry
            if owner == user_id:
                self._entries[client_id] = (user_id, now)
                self._entries.move_to_end(client_id)
                if hold:
                    self._held[client_id] += 1
                return True
            if client_id in self._held or now - seen <= self._keep:
                return False
            self._drop(client_id)
        if self._counts[user_id] >= self._per_user:
            self._evict_oldest(user_id)
        self._entries[client_id] = (user_id, now)
        self._counts[user_id] += 1
        if hold:
            self._held[client_id] += 1
        self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        # Not held, the entries are in the order they were last seen: the expired
        # ones lead. Held ones are skipped, wherever they are.
        for client_id, (_, seen) in list(self._entries.items()):
            if client_id in self._held:
                continue
            if now - seen <= self._keep and len(self._entries) <= self._limit:
                break
            self._drop(client_id)

    def _evict_oldest(self, user_id: UserId) -> None:
        for client_id, (owner, _) in self._entries.items():
            if owner == user_id and client_id not in self._held:
                self._drop(client_id)
                return

    def _drop(self, client_id: int) -> None:
        user_id, _ = self._entries.pop(client_id)
        count = self._counts[user_id] - 1
        if count > 0:
            self._counts[user_id] = count
        else:
            del self._counts[user_id]
