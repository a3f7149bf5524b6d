"""
The per-user cap on open sockets (COLLAB_MAX_SOCKETS_PER_USER): counted over all of a
user's documents and, through Redis, over every server process.

Why shared and not per process: with a per-process count the cap would be WORKERS times
the setting, and which process a browser lands on is the kernel's choice, so the limit a
user meets would depend on luck. The price is one Redis round trip (a Lua script) when a
socket opens, against the session lookup and access query a handshake already costs, and
nothing per frame. Closing sockets are subtracted in batches, once per event loop turn.

Each process keeps its own counts in one Redis hash (user id -> open sockets) that
expires unless the process renews it (every RENEW_SECONDS, TTL_SECONDS). The script that
admits a socket sums the user's counts over the hashes of live processes and drops the
names of processes whose hash has expired, so the sockets of a process that died (kill
-9, OOM) stop counting within TTL_SECONDS; a process that stops gracefully removes its
hash at once. A process whose hash expired while it was alive (an event loop stalled
longer than the TTL) writes its counts back at its next renewal.

Without Redis (REDIS_URL unset: one process) the count is this process's. With Redis
unreachable, a socket is admitted against this process's count alone: an outage of the
counter must not lock people out of their documents.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

logger = logging.getLogger(__name__)

TTL_SECONDS = 15
RENEW_SECONDS = 5

# KEYS[1]: the set of process names; ARGV: key prefix, own name, user id, cap, TTL, then
# the closings of this process not sent yet (user id, count, ...), applied first so that
# a socket closed just before counts as closed. Returns {1, count with this socket} or
# {-1, count} when refused.
ADMIT = """
local prefix, own, user = ARGV[1], ARGV[2], ARGV[3]
local cap, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = prefix .. own
for i = 6, #ARGV, 2 do
  if redis.call('HINCRBY', mine, ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', mine, ARGV[i])
  end
end
local total = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if name ~= own then
    local key = prefix .. name
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', KEYS[1], name)
    else
      total = total + math.max(0, tonumber(redis.call('HGET', key, user) or '0'))
    end
  end
end
total = total + math.max(0, tonumber(redis.call('HGET', mine, user) or '0'))
if total >= cap then
  return {-1, total}
end
redis.call('HINCRBY', mine, user, 1)
redis.call('EXPIRE', mine, ttl)
redis.call('SADD', KEYS[1], own)
return {1, total + 1}
"""

# KEYS[1]: this process's hash; ARGV: user id, count, user id, count, ...
RELEASE = """
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
"""


@dataclass(frozen=True, slots=True)
class Seat:
    """One admitted socket; hand it back with `SocketCounts.release` when it closes."""

    user_id: int
    shared: bool
    """Whether Redis counted it (and must be told when it closes)."""


class Refused(Exception):
    def __init__(self, count: int, cap: int) -> None:
        super().__init__(f"{count} sockets open, cap {cap}")
        self.count = count
        self.cap = cap


class SocketCounts:
    """Open sockets per user: this process's, and all processes' through Redis."""

    def __init__(self) -> None:
        self.local: dict[int, int] = {}
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._shared: _SharedCounts | None = None
        self._outage_logged = False

    async def admit(self, user_id: int, cap: int) -> Seat:
        """Count a new socket of `user_id`, or raise `Refused` if `cap` are open."""
        shared = self._shared_counts()
        counted = False
        if shared is not None:
            try:
                admitted, count = await shared.admit(user_id, cap)
            except Exception as exc:  # noqa: BLE001 (any Redis failure: fall back)
                self._log_outage(exc)
            else:
                self._outage_logged = False
                if not admitted:
                    raise Refused(count, cap)
                counted = True
        if not counted and self.local.get(user_id, 0) >= cap:
            raise Refused(self.local[user_id], cap)
        self.local[user_id] = self.local.get(user_id, 0) + 1
        return Seat(user_id, counted)

    def release(self, seat: Seat) -> None:
        left = self.local.get(seat.user_id, 0) - 1
        if left > 0:
            self.local[seat.user_id] = left
        else:
            self.local.pop(seat.user_id, None)
        if seat.shared and self._shared is not None:
            self._shared.release(seat.user_id)

    async def aclose(self) -> None:
        """Take this process's counts out of Redis (graceful shutdown, tests)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.aclose()

    def _shared_counts(self) -> _SharedCounts | None:
        url = settings.REDIS_URL
        if not url:
            return None
        loop = asyncio.get_running_loop()
        shared = self._shared
        if shared is None or shared.loop is not loop or shared.url != url:
            # A new event loop (each test has one) cannot use the old one's connections.
            if shared is not None and shared.loop is loop:
                asyncio.ensure_future(shared.aclose())
            shared = self._shared = _SharedCounts(url, _prefix(), self.name, self.local)
        return shared

    def _log_outage(self, exc: Exception) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            logger.warning("Socket counts in Redis unavailable, counting per process: %s", exc)


class _SharedCounts:
    def __init__(self, url: str, prefix: str, name: str, local: dict[int, int]) -> None:
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.prefix = prefix
        self.name = name
        self.key = prefix + name
        self.names_key = prefix + "processes"
        self.local = local
        self.client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._admit = self.client.register_script(ADMIT)
        self._release = self.client.register_script(RELEASE)
        self.pending: dict[int, int] = {}
        self._flush: asyncio.Task[None] | None = None
        self._renew = asyncio.ensure_future(self._renew_forever())

    async def admit(self, user_id: int, cap: int) -> tuple[bool, int]:
        pending, self.pending = self.pending, {}
        args: list[str | int] = [self.prefix, self.name, user_id, cap, TTL_SECONDS]
        args += [n for item in pending.items() for n in item]
        try:
            result, count = await self._admit(keys=[self.names_key], args=args)
        except BaseException:
            for user, closed in pending.items():
                self.pending[user] = self.pending.get(user, 0) + closed
            raise
        return int(result) > 0, int(count)

    def release(self, user_id: int) -> None:
        self.pending[user_id] = self.pending.get(user_id, 0) + 1
        if self._flush is None or self._flush.done():
            self._flush = asyncio.ensure_future(self._send_releases())

    async def _send_releases(self) -> None:
        # Yield once so that the sockets closing in this loop turn go in one call.
        await asyncio.sleep(0)
        pending, self.pending = self.pending, {}
        if not pending:
            return
        args: list[int] = [n for item in pending.items() for n in item]
        try:
            await self._release(keys=[self.key], args=args)
        except Exception as exc:  # noqa: BLE001
            # Counted too high until this process renews its hash after an outage.
            logger.warning("Could not subtract closed sockets in Redis: %s", exc)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self.renew()
            except Exception as exc:  # noqa: BLE001
                logger.warning("Could not renew socket counts in Redis: %s", exc)

    async def renew(self) -> None:
        """Keep this process's hash alive; write it back if it expired meanwhile."""
        alive = await self.client.expire(self.key, TTL_SECONDS)
        if alive or not self.local:
            return
        # What this process holds is the truth: closings not yet sent are in it.
        self.pending.clear()
        pipe: Pipeline = self.client.pipeline(transaction=True)
        pipe.delete(self.key)
        pipe.hset(self.key, mapping={str(k): v for k, v in self.local.items()})
        pipe.expire(self.key, TTL_SECONDS)
        pipe.sadd(self.names_key, self.name)
        await pipe.execute()

    async def aclose(self) -> None:
        self._renew.cancel()
        tasks = [self._renew] + ([self._flush] if self._flush is not None else [])
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.client.delete(self.key)
            await self.client.srem(self.names_key, self.name)
        except Exception as exc:  # noqa: BLE001
            logger.warning("Could not remove socket counts from Redis: %s", exc)
        await self.client.aclose()


def _prefix() -> str:
    # Per database: user ids are those of one database, and deployments (or test runs)
    # sharing one Redis must not count each other's users.
    db = connections["default"].settings_dict
    return f"collab:sockets:{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db['NAME']}:"


socket_counts = SocketCounts()
