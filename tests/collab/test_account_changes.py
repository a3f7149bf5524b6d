"""Account changes end a person's live sockets within a second (4401), and nothing those
sockets send afterwards lands: deactivation, a new password, signing out, an admin
deleting the account or the session. Through the real ASGI application, the real
sign-in, sign-out and admin views, and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.models import Session
from django.test import Client

from collab.protocol import CloseCode
from collab.registry import registry
from collab.sessions import signed_in
from documents.models import Document, Role
from documents.sharing import share_with
from editor.asgi import application
from tests.collab.test_consumers import stored_text
from tests.collab.yclient import YClient

pytestmark = pytest.mark.django_db(transaction=True)

# collab.accounts is imported inside the two tests that use it directly, so that the
# others run (and fail on their assertions) against code that predates it.

WITHIN = 1.0
"""Seconds from a committed change to the close: the bound the issue sets."""

Open = Callable[[Client, Document], Awaitable[YClient]]


def signed_in_browser(username: str, password: str) -> Client:
    """A browser that signed in through the real sign-in view."""
    browser = Client()
    response = browser.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content[:500]
    return browser


def cookie_of(browser: Client) -> str:
    return f"sessionid={browser.cookies['sessionid'].value}"


@pytest.fixture
async def open_socket() -> AsyncIterator[Open]:
    """A socket to the document with the browser's session cookie, as its editor opens."""
    opened: list[WebsocketCommunicator] = []
    client_ids = iter(range(5000, 6000))

    async def open_(browser: Client, document: Document) -> YClient:
        communicator = WebsocketCommunicator(
            application,
            f"/ws/documents/{document.pk}?extensions=1",
            headers=[
                (b"origin", b"http://localhost:8000"),
                (b"cookie", cookie_of(browser).encode()),
            ],
        )
        opened.append(communicator)
        connected, code = await communicator.connect()
        assert connected, code
        client = YClient(communicator, next(client_ids))
        await client.hello()
        return client

    yield open_
    for communicator in opened:
        await communicator.disconnect()


@pytest.fixture
async def editing(
    open_socket: Open, alice: AbstractUser, bob: AbstractUser, document: Document
) -> tuple[YClient, YClient]:
    """Alice (the owner) and Bob (an editor, signed in through the real view) each in the
    document, with "before" written by Bob and saved."""
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    owner = await open_socket(
        await database_sync_to_async(signed_in_browser)("alice", "pw-alice-1"), document
    )
    editor = await open_socket(
        await database_sync_to_async(signed_in_browser)("bob", "pw-bob-1"), document
    )
    editor.text += "before"
    await editor.until(editor.all_saved)
    await owner.until(lambda: str(owner.text) == "before")
    return owner, editor


async def assert_signed_out_and_nothing_landed(
    owner: YClient, editor: YClient, document: Document
) -> None:
    """Bob writes right after the change; his socket closes with 4401 within the bound,
    and what he wrote is neither stored nor relayed."""
    editor.text += " after"
    assert await editor.closed_with(timeout=WITHIN) == CloseCode.NOT_SIGNED_IN
    # A marker from the owner, saved: the room's journal holds nothing older unsaved.
    owner.text += " marker"
    await owner.until(owner.all_saved)
    assert str(owner.text) == "before marker"
    assert await stored_text(document) == "before marker"


async def test_deactivating_a_person_closes_their_sockets(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    owner, editor = editing

    def deactivate() -> None:
        bob.is_active = False
        bob.save()

    await database_sync_to_async(deactivate)()
    await assert_signed_out_and_nothing_landed(owner, editor, document)


async def test_a_new_password_closes_their_sockets(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    owner, editor = editing

    def change_password() -> None:
        user = get_user_model().objects.get(pk=bob.pk)
        user.set_password("a-new-password-2")
        user.save()

    await database_sync_to_async(change_password)()
    await assert_signed_out_and_nothing_landed(owner, editor, document)


async def test_signing_out_closes_that_browsers_sockets_only(
    open_socket: Open, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    owner = await open_socket(
        await database_sync_to_async(signed_in_browser)("alice", "pw-alice-1"), document
    )
    laptop = await database_sync_to_async(signed_in_browser)("bob", "pw-bob-1")
    phone = await database_sync_to_async(signed_in_browser)("bob", "pw-bob-1")
    on_laptop = await open_socket(laptop, document)
    on_phone = await open_socket(phone, document)
    on_laptop.text += "before"
    await on_laptop.until(on_laptop.all_saved)
    await owner.until(lambda: str(owner.text) == "before")

    response = await database_sync_to_async(laptop.post)("/accounts/logout/")
    assert response.status_code == 302
    await assert_signed_out_and_nothing_landed(owner, on_laptop, document)

    # Signed in elsewhere, Bob keeps editing there.
    on_phone.text += " phone"
    await on_phone.until(on_phone.all_saved)
    assert await stored_text(document) == "before marker phone"


async def test_an_admin_deleting_the_person_closes_their_sockets(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    owner, editor = editing

    def delete_in_admin() -> None:
        get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
        admin = signed_in_browser("root", "pw-root-1")
        response = admin.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302, response.content[:500]
        assert not get_user_model().objects.filter(pk=bob.pk).exists()

    await database_sync_to_async(delete_in_admin)()
    await assert_signed_out_and_nothing_landed(owner, editor, document)


async def test_deleting_the_session_closes_its_sockets(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    owner, editor = editing

    def delete_bobs_sessions() -> None:
        keys = [
            s.pk
            for s in Session.objects.all()
            if s.get_decoded().get("_auth_user_id") == str(bob.pk)
        ]
        assert len(keys) == 1
        Session.objects.filter(pk__in=keys).delete()

    await database_sync_to_async(delete_bobs_sessions)()
    await assert_signed_out_and_nothing_landed(owner, editor, document)


async def test_other_account_changes_keep_the_sockets_open(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    owner, editor = editing

    def rename() -> None:
        bob.first_name = "Robert"
        bob.save()

    await database_sync_to_async(rename)()
    editor.text += " after"
    await editor.until(editor.all_saved)
    await owner.until(lambda: str(owner.text) == "before after")
    assert await stored_text(document) == "before after"


async def test_the_periodic_recheck_signs_out_what_sent_no_signal(
    editing: tuple[YClient, YClient], bob: AbstractUser, document: Document
) -> None:
    """A password changed with `QuerySet.update` sends no signal: the periodic re-check
    (the safety net) compares the session's auth hash with the account's."""
    _, editor = editing
    await database_sync_to_async(get_user_model().objects.filter(pk=bob.pk).update)(
        password="md5$changed$elsewhere"
    )
    await registry.rooms[document.pk].recheck_access()
    assert await editor.closed_with(timeout=WITHIN) == CloseCode.NOT_SIGNED_IN


def test_signed_in_follows_djangos_own_rules(alice: AbstractUser, bob: AbstractUser) -> None:
    User = get_user_model()
    carol = User.objects.create_user("carol", "carol@example.com", "pw-carol-1")
    dave = User.objects.create_user("dave", "dave@example.com", "pw-dave-1")
    sessions = {}
    for user in (alice, bob, carol, dave):
        browser = Client()
        browser.force_login(user)
        sessions[browser.cookies["sessionid"].value] = user.pk
    bob.set_password("another-password-3")
    bob.save()
    carol.is_active = False
    carol.save()
    dave.delete()
    alice_key = next(key for key, pk in sessions.items() if pk == alice.pk)
    assert signed_in(sessions) == {alice_key}
    # A session names one user: it does not sign in anybody else's socket.
    assert signed_in({alice_key: bob.pk}) == set()


async def test_a_socket_joining_after_a_change_is_checked_too(
    alice: AbstractUser, bob: AbstractUser
) -> None:
    """A socket authenticates, then joins its room; a change announced in between found
    no socket to check. The watch remembers it and checks the socket as it joins."""
    from collab.accounts import AccountWatch, session_digest

    class Joining:
        def __init__(self, user_id: int, session_key: str) -> None:
            self.user_id, self.session_key = user_id, session_key
            self.closed = False
            self.held = None
            self.closed_with: int | None = None

        def close(self, code: int, reason: str = "") -> None:
            self.closed, self.closed_with = True, code

    def sign_in(user: AbstractUser) -> str:
        browser = Client()
        browser.force_login(user)
        return browser.cookies["sessionid"].value

    bob_key = await database_sync_to_async(sign_in)(bob)
    alice_key = await database_sync_to_async(sign_in)(alice)
    watch = AccountWatch(lambda: [])
    try:
        watch.changed([bob.pk], [session_digest(bob_key)])
        late, other = Joining(bob.pk, bob_key), Joining(alice.pk, alice_key)
        watch.joined(late)
        watch.joined(other)
        assert late.held is not None and other.held is None
        await late.held.wait()
        assert late.closed_with == CloseCode.NOT_SIGNED_IN
        assert other.closed_with is None and late.held is None
    finally:
        await watch.aclose()


async def test_the_watch_listens_again_after_redis_drops_its_connection(settings) -> None:  # type: ignore[no-untyped-def]
    """Announcements go through Redis whenever the channel layer does; a subscription
    connection that Redis drops is replaced, and announcements reach the watch again."""
    from collab.accounts import AccountWatch, announce

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL]},
        }
    }
    heard: list[list[str]] = []
    watch = AccountWatch(lambda: [])
    watch.changed = lambda users, ended: heard.append(list(users))  # type: ignore[method-assign]
    admin = redis.asyncio.Redis.from_url(settings.REDIS_URL)

    async def until_heard(user_id: int) -> None:
        async with asyncio.timeout(10):
            while [str(user_id)] not in heard:
                # Published again until heard: a message sent while the watch has no
                # connection is lost (the periodic re-check covers that).
                await asyncio.to_thread(announce, [user_id])
                await asyncio.sleep(0.05)

    try:
        await watch.ensure()
        await until_heard(1)
        name = f"collab.accounts.{os.getpid()}"
        ids = [c["id"] for c in await admin.client_list() if c.get("name") == name]
        assert len(ids) == 1
        await admin.client_kill_filter(_id=ids[0])
        await until_heard(2)
        again = [c["id"] for c in await admin.client_list() if c.get("name") == name]
        assert len(again) == 1 and again != ids
    finally:
        await watch.aclose()
        await admin.aclose()
