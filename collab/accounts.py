"""
Account changes that end access, brought to every server process within a second.

Django's own signals tell of them (connected in `CollabConfig.ready`):

- `post_save` of a user: deactivated, or given a new password (which changes the auth
  hash its sessions hold);
- `post_delete` of a user (the admin, a script);
- `post_delete` of a `Session` row: a sign-out with the database session engine, and an
  admin or a script deleting it (a queryset delete sends it for every row once anything
  listens);
- `user_logged_out`: a sign-out with any session engine.

Once the change commits, its user ids are published on the Redis channel
`collab.accounts`, which every server process subscribes to once (`AccountWatch`, owned
by the room registry). Each process then checks at once the sessions of the sockets it
holds for those users, by the rules a request is signed in by
(`collab.sessions.signed_in`), and closes those no longer signed in with 4401. Until
that check is settled those sockets are held: their consumers read nothing more from
them, so nothing sent after the announcement reached the process lands.

Why a Redis subscription of its own rather than a channel-layer group: the layer hands
a message to its receiver through a queue, one event-loop turn after reading it, and a
frame that arrived in the same turn (the process was busy) was handled first and stored
(1 run in 6 of the end-to-end test on a loaded machine). The handler here runs in the
task that read the message, no later than a consumer that read a frame in that turn.
Without Redis (the in-memory channel layer) the process is alone, and an announcement
is handed to its watch directly.

Only those users' sockets are checked, not the rest of their rooms: an account change
alters whether its sessions are signed in, not who may read which document.

A session that ended is named by a keyed digest, never by its key: a session key is a
credential, and the message goes through Redis.

    {"users": [user id], "ended": [session digest]}   (JSON)

The periodic re-check of every room (COLLAB_ACCESS_RECHECK_SECONDS) stays the safety
net, for what sends no signal (`QuerySet.update(is_active=False)`, a session that
expires), for a message lost while Redis was unreachable, and for changes made by a
process without Redis (a management command beside `make run`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import redis
import redis.asyncio
from django.apps import apps
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_out
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.crypto import salted_hmac

from collab.protocol import CloseCode
from collab.sessions import asigned_in

if TYPE_CHECKING:
    from collab.rooms import Room

logger = logging.getLogger(__name__)

CHANNEL = "collab.accounts"
CHECK_TIMEOUT_SECONDS = 10.0
"""A check that takes longer (the database is out) closes the held sockets with 4500
instead: their clients reconnect and are signed in afresh, or refused."""
RECENT_SECONDS = 60.0
"""How long a change is remembered for a socket that authenticated before it but joined
its room after the check (which did not see it yet)."""
RETRY_SECONDS = 1.0
"""Pause before subscribing again after Redis failed."""


class HeldConnection(Protocol):
    """What the watch needs of a socket (collab.consumers.SocketConnection)."""

    user_id: int | None
    session_key: str | None
    closed: bool
    held: asyncio.Event | None
    """Set while an account check of this socket is under way: its consumer waits for
    it before reading another frame."""

    def close(self, code: int, reason: str = "") -> None: ...


def session_digest(session_key: str) -> str:
    return salted_hmac("collab.accounts.session", session_key, algorithm="sha256").hexdigest()


def redis_url() -> str | None:
    """Redis carries account changes whenever the channel layer is not the in-memory one
    (several processes may hold sockets); otherwise this process is alone."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    url = getattr(settings, "REDIS_URL", "")
    return url if url and backend != "channels.layers.InMemoryChannelLayer" else None


# Announcing (any process: server workers, the admin, management commands)


@functools.lru_cache(maxsize=4)
def _publisher(url: str) -> redis.Redis:
    # Short timeouts: an unreachable Redis must not hold up a sign-out for long.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def announce(users: Iterable[object], ended: Iterable[str] = ()) -> None:
    """Tell every server process that these users' sessions must be checked now, and
    that the sessions with these digests ended. Call it once the change committed."""
    # Primary keys as text: JSON has no UUID, and any user model's key has a str().
    message = {"users": [str(user) for user in users], "ended": list(ended)}
    url = redis_url()
    try:
        if url is not None:
            _publisher(url).publish(CHANNEL, json.dumps(message))
        elif _local is not None:
            _local.hand_over(message)
    except Exception:
        logger.exception(
            "Announcing an account change of users %s failed; their sockets are checked "
            "at the next periodic re-check",
            message["users"],
        )


def _announce_on_commit(using: str, users: list[object], ended: list[str] | None = None) -> None:
    transaction.on_commit(lambda: announce(users, ended or ()), using=using)


def user_saved(
    sender: Any, instance: Any, created: bool, update_fields: Any, using: str, **kwargs: Any
) -> None:
    # A new account has no sockets yet; signing in saves only last_login.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    _announce_on_commit(using, [instance.pk])


def user_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    _announce_on_commit(using, [instance.pk])


def session_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    if instance.expire_date <= timezone.now():
        # Nobody is signed in with it any more (the periodic re-check closes its
        # sockets), and `clearsessions` deletes these by the thousand.
        return
    user_id = instance.get_decoded().get(SESSION_KEY)
    if user_id is None:
        return  # a session nobody signed in with
    pk = get_user_model()._meta.pk.to_python(user_id)
    _announce_on_commit(using, [pk], [session_digest(instance.session_key)])


def logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or session_key is None:
        return
    # Sent before logout() flushes the session, and in autocommit on_commit runs at
    # once: the digest says the session ended whatever its store still holds.
    _announce_on_commit(DEFAULT_DB_ALIAS, [user.pk], [session_digest(session_key)])


def connect_signals() -> None:
    user_model = get_user_model()
    post_save.connect(user_saved, sender=user_model, dispatch_uid="collab.accounts.saved")
    post_delete.connect(user_deleted, sender=user_model, dispatch_uid="collab.accounts.deleted")
    user_logged_out.connect(logged_out, dispatch_uid="collab.accounts.logged_out")
    if apps.is_installed("django.contrib.sessions"):
        from django.contrib.sessions.models import Session

        post_delete.connect(
            session_deleted, sender=Session, dispatch_uid="collab.accounts.session_deleted"
        )


# Watching (each server process)

_local: AccountWatch | None = None
"""The watch of this process when there is no Redis: announcements go straight to it."""


class AccountWatch:
    """This process's subscription to account changes, and the checks they start."""

    def __init__(self, rooms: Callable[[], Iterable[Room]]) -> None:
        self._rooms = rooms
        self._source: object = None
        """The Redis URL subscribed to, or the event loop handed announcements directly."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Future[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._recent: dict[Any, float] = {}
        """User id (as text) -> when a change of theirs was last announced (oldest first)."""
        self._ended: dict[Any, float] = {}
        """Digest of an ended session -> when it was announced (oldest first)."""

    async def ensure(self) -> None:
        """Subscribe once (again if the configuration or the event loop changed, as
        between tests). Redis failing is logged, not raised: sockets still open, and the
        subscription is retried in the background."""
        global _local
        loop = asyncio.get_running_loop()
        url = redis_url()
        source: object = url if url is not None else loop
        if source != self._source or loop is not self._loop:
            # Swapped before anything is awaited: a concurrent call sees the new state.
            old = self._detach()
            self._source, self._loop = source, loop
            if url is None:
                _local = self
            else:
                self._subscribed = loop.create_future()
                self._listener = asyncio.ensure_future(self._listen(url, self._subscribed))
            await _stopped(old)
        subscribed = self._subscribed
        if subscribed is not None and not subscribed.done():
            await asyncio.shield(subscribed)

    async def aclose(self) -> None:
        await _stopped(self._detach())

    def _detach(self) -> list[asyncio.Future[Any]]:
        global _local
        if _local is self:
            _local = None
        tasks: list[asyncio.Future[Any]] = list(self._checks)
        if self._listener is not None:
            tasks.append(self._listener)
        self._source = self._loop = self._listener = self._subscribed = None
        return tasks

    async def _listen(self, url: str, subscribed: asyncio.Future[None]) -> None:
        client = redis.asyncio.Redis.from_url(
            url,
            client_name=f"collab.accounts.{os.getpid()}",  # for CLIENT LIST
            socket_connect_timeout=5,
            socket_keepalive=True,
            # A PING every 30 s on an idle subscription: a connection that died
            # silently is noticed and replaced.
            health_check_interval=30,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        failing = False
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(**{CHANNEL: self._on_published})
                    if not subscribed.done():
                        subscribed.set_result(None)
                    # The handler runs inside this call, as soon as a message is read
                    # (redis-py reconnects and subscribes again after a failure).
                    await pubsub.get_message(timeout=1.0)
                    failing = False
                except Exception:
                    if not subscribed.done():
                        subscribed.set_result(None)  # sockets do not wait for Redis
                    if not failing:
                        logger.exception(
                            "Listening for account changes failed; retrying (the periodic "
                            "re-check covers what is missed meanwhile)"
                        )
                    failing = True
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except Exception:
                pass  # the process is going away

    def _on_published(self, message: dict[str, Any]) -> None:
        try:
            data = json.loads(message["data"])
            self.changed(data["users"], data["ended"])
        except Exception:
            logger.exception("Handling an account change failed")

    def hand_over(self, message: dict[str, Any]) -> None:
        """An announcement made in this process (no Redis), from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.changed(message["users"], message["ended"])
        else:
            # In a context of its own: the caller's (asgiref's sync thread) would make the
            # check's own database call think it runs inside that thread, and refuse.
            loop.call_soon_threadsafe(
                self.changed, message["users"], message["ended"], context=contextvars.Context()
            )

    def changed(self, users: Iterable[object], ended: Iterable[str]) -> None:
        """Check now the sockets this process holds for `users`; hold them until then."""
        user_ids, digests = {str(user) for user in users}, set(ended)
        self._remember(self._recent, user_ids)
        self._remember(self._ended, digests)
        targets: list[Any] = [
            connection
            for room in self._rooms()
            for connection in room.members
            if str(connection.user_id) in user_ids
            and connection.session_key is not None
            and not getattr(connection, "closed", False)
        ]
        if targets:
            self._check(targets, digests)

    def joined(self, connection: HeldConnection) -> None:
        """A socket joined its room. Its user may have changed between its sign-in and
        now, when no check could see it: check it too."""
        seen = self._recent.get(str(connection.user_id))
        if (
            seen is not None
            and connection.session_key is not None
            and time.monotonic() - seen < RECENT_SECONDS
        ):
            self._check([connection], set(self._ended))

    @staticmethod
    def _remember(table: dict[Any, float], keys: set[Any]) -> None:
        now = time.monotonic()
        for key in keys:
            table.pop(key, None)  # re-inserted last: the table stays oldest first
            table[key] = now
        while table:
            oldest = next(iter(table))
            if now - table[oldest] < RECENT_SECONDS:
                break
            del table[oldest]

    def _check(self, targets: list[HeldConnection], digests: set[str]) -> None:
        gate = asyncio.Event()
        for connection in targets:
            connection.held = gate
        task = asyncio.ensure_future(self._settle(targets, digests, gate))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _settle(
        self, targets: list[HeldConnection], digests: set[str], gate: asyncio.Event
    ) -> None:
        try:
            ended = [c for c in targets if digests and _digest_of(c) in digests]
            rest = [c for c in targets if c not in ended]
            alive: set[str] = set()
            if rest:
                sessions = {c.session_key: c.user_id for c in rest}
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                        alive = await asigned_in(sessions)
                except Exception:
                    # Nobody can tell whether they are still signed in, and they must
                    # not write meanwhile: their clients reconnect and sign in afresh.
                    logger.exception(
                        "Checking the sessions of users %s failed; closing their sockets",
                        sorted({c.user_id for c in rest}),
                    )
                    for connection in rest:
                        connection.close(CloseCode.SERVER_ERROR, "try again")
                    return
            signed_out = ended + [c for c in rest if c.session_key not in alive]
            for connection in signed_out:
                connection.close(CloseCode.NOT_SIGNED_IN, "signed out")
            for user_id in {c.user_id for c in signed_out}:
                logger.info(
                    "Closed the sockets of user %s: signed out",
                    user_id,
                    extra={"user_id": user_id, "close_code": int(CloseCode.NOT_SIGNED_IN)},
                )
        finally:
            gate.set()
            for connection in targets:
                if connection.held is gate:
                    connection.held = None


def _digest_of(connection: HeldConnection) -> str:
    return session_digest(connection.session_key or "")


async def _stopped(tasks: list[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
