"""Downgrading and revoking access reaches a live socket on another server process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractUser

from collab.protocol import CloseCode
from documents.models import Document, Role
from documents.sharing import remove_person, share_with
from tests.e2e.pyclient import YClient
from tests.e2e.servers import ServerProcess
from tests.e2e.test_two_servers import session_cookie, stored_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def open_client(server: ServerProcess, document: Document, user: AbstractUser) -> YClient:
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
