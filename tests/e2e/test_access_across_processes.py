"""Downgrading and revoking access, and account changes (deactivation, a new password,
signing out), reach live sockets on every server process."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from collab.protocol import CloseCode
from documents.models import Document, Role
from documents.sharing import remove_person, share_with
from tests.e2e.pyclient import YClient
from tests.e2e.servers import ServerProcess
from tests.e2e.test_two_servers import session_cookie, stored_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def open_client(
    server: ServerProcess, document: Document, user: AbstractUser, cookie: str | None = None
) -> YClient:
    if cookie is None:
        cookie = await database_sync_to_async(session_cookie)(user)
    return await YClient.open(
        f"{server.ws_url}/{document.pk}", cookie=cookie, origin=server.http_url, extensions=True
    )


async def test_downgrade_and_revocation_reach_a_socket_on_another_process(
    start_server: Callable[..., ServerProcess],
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
) -> None:
    one, two = start_server("access-a"), start_server("access-b")
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    owner = await open_client(one, document, alice)
    editor = await open_client(two, document, bob)
    try:
        editor.type_text("written by bob. ")
        await editor.until_saved()
        await owner.until(lambda: "written by bob." in str(owner.text))

        # The change is made in this process; server two hears of it through Redis.
        await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
        attempt = 0
        while not editor.denied:
            attempt += 1
            assert attempt <= 50, "the downgrade never reached the other process"
            expected = editor.writes_sent + 1
            editor.type_text(f"bob{attempt} ")
            # Either committed (still an editor) or refused with a notice (now a viewer).
            await editor.until(lambda n=expected: editor.denied or (editor.saved or 0) >= n)
        refused = f"bob{attempt} "
        owner.type_text("owner after. ")
        await editor.until(lambda: "owner after." in str(editor.text))
        await owner.until_saved()
        stored = await database_sync_to_async(stored_text)(document.pk)
        assert "written by bob." in stored and "owner after." in stored
        assert refused not in stored and refused not in str(owner.text)

        await database_sync_to_async(remove_person)(document, bob.pk)
        assert await editor.until_closed() == CloseCode.ACCESS_REVOKED
    finally:
        await owner.close()
        await editor.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def sign_out(server: ServerProcess, cookie: str) -> int:
    """Sign out through the server's own sign-out view, as the browser's form does: the
    CSRF token from a page, then a POST. Returns the response status."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(
        urllib.request.Request(f"{server.http_url}/accounts/login/", headers={"Cookie": cookie}),
        timeout=10,
    ) as page:
        jar = SimpleCookie()
        for header in page.headers.get_all("Set-Cookie") or []:
            jar.load(header)
    token = jar["csrftoken"].value
    request = urllib.request.Request(
        f"{server.http_url}/accounts/logout/",
        data=urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode(),
        headers={"Cookie": f"{cookie}; csrftoken={token}"},
    )
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as redirect:  # the 302 a redirect handler did not follow
        return int(redirect.code)


def deactivate(user: AbstractUser) -> None:
    user.is_active = False
    user.save()


def give_new_password(user: AbstractUser) -> None:
    user.set_password("a-new-password-2")
    user.save()


WITHIN = 1.0
"""Seconds from a committed account change to the close of every socket: the bound the
issue sets."""


@pytest.mark.parametrize("change", ["deactivate", "new password", "sign out"])
async def test_account_changes_close_sockets_on_every_process_within_a_second(
    start_server: Callable[..., ServerProcess],
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
    change: str,
) -> None:
    """Bob, an editor, has the document open on both processes in one browser. His
    account changes (in the test process, like an admin's, or by signing out through
    server one); both his sockets close with 4401 within a second, and what he types
    right after the change is stored nowhere."""
    servers = start_server("accounts-a"), start_server("accounts-b")
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    browser = await database_sync_to_async(session_cookie)(bob)
    owners = [await open_client(server, document, alice) for server in servers]
    editors = [await open_client(server, document, bob, browser) for server in servers]
    try:
        for n, editor in enumerate(editors):
            editor.type_text(f"before{n} ")
            await editor.until_saved()
        for owner in owners:
            await owner.until(lambda o=owner: "before0" in str(o.text) and "before1" in str(o.text))

        if change == "sign out":
            assert await asyncio.to_thread(sign_out, servers[0], browser) == 302
        else:
            user = await database_sync_to_async(get_user_model().objects.get)(pk=bob.pk)
            act = deactivate if change == "deactivate" else give_new_password
            await database_sync_to_async(act)(user)
        for n, editor in enumerate(editors):
            editor.type_text(f"after{n} ")
        codes = await asyncio.gather(*(editor.until_closed(timeout=WITHIN) for editor in editors))
        assert codes == [CloseCode.NOT_SIGNED_IN] * 2

        # Markers from the owner, saved on both processes: their journals hold nothing
        # older that is still unsaved.
        for n, owner in enumerate(owners):
            owner.type_text(f"marker{n} ")
            await owner.until_saved()
        stored = await database_sync_to_async(stored_text)(document.pk)
        for word in ("before0", "before1", "marker0", "marker1"):
            assert word in stored
        assert "after" not in stored
        assert not any("after" in str(owner.text) for owner in owners)
    finally:
        for client in (*owners, *editors):
            await client.close()
