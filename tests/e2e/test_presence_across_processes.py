"""Presence tells the truth across server processes: the name others see is the account's,
and the client id of a client that is away stays its user's on every process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractUser

from documents.models import Document, Role
from documents.people import presence_user
from documents.sharing import share_with
from tests.e2e.pyclient import YClient, awareness_frame
from tests.e2e.servers import ServerProcess
from tests.e2e.test_two_servers import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# y-protocols client ids: random, 32 bits.
AWAY_ID = 3_141_592_653
OTHER_AWAY_ID = 1_618_033_988
SQUATTER_NEXT_ID = 2_718_281_828


async def open_client(
    server: ServerProcess, document: Document, user: AbstractUser, client_id: int | None = None
) -> YClient:
    cookie = await database_sync_to_async(session_cookie)(user)
    return await YClient.open(
        f"{server.ws_url}/{document.pk}", cookie=cookie, origin=server.http_url, client_id=client_id
    )


def state_of(client: YClient, client_id: int) -> dict[str, Any]:
    return dict(json.loads(client.awareness[client_id]))


async def test_presence_names_and_ids_hold_across_processes(
    start_server: Callable[..., ServerProcess],
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
) -> None:
    await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
    one, two = start_server("presence-a"), start_server("presence-b")
    alice_user = await database_sync_to_async(presence_user)(alice)
    bob_user = await database_sync_to_async(presence_user)(bob)
    watcher = await open_client(one, document, alice)
    ada = await open_client(one, document, alice, client_id=AWAY_ID)
    opened = [watcher, ada]
    try:
        await watcher.set_presence({"cursor": "watcher"})
        await ada.set_presence({"cursor": "ada"})
        await watcher.until(lambda: AWAY_ID in watcher.awareness)
        # Ada leaves before process two opens the document: two learns whose the id is
        # from process one's reply to its hello.
        await ada.close()
        opened.remove(ada)
        await watcher.until(lambda: AWAY_ID not in watcher.awareness)

        squatter = await open_client(two, document, bob, client_id=AWAY_ID)
        opened.append(squatter)
        # Process two has heard from process one (the watcher's presence came with it).
        await squatter.until(lambda: watcher.doc.client_id in squatter.awareness)
        await squatter.set_presence({"user": alice_user, "cursor": "squatter"})
        fallback = (SQUATTER_NEXT_ID, 1, json.dumps({"user": alice_user, "cursor": "next"}))
        await squatter.send(awareness_frame([fallback]))
        await watcher.until(
            lambda: AWAY_ID in watcher.awareness or SQUATTER_NEXT_ID in watcher.awareness
        )
        assert AWAY_ID not in watcher.awareness
        # A viewer on another process shows under its own name, not the one it claimed.
        assert state_of(watcher, SQUATTER_NEXT_ID) == {"user": bob_user, "cursor": "next"}

        # Ada's client comes back with its id (and its clock, above the removal's), on
        # the process the squatter is on.
        back = await open_client(two, document, alice, client_id=AWAY_ID)
        opened.append(back)
        await back.send(awareness_frame([(AWAY_ID, 10, json.dumps({"cursor": "back"}))]))
        await watcher.until(lambda: AWAY_ID in watcher.awareness)
        assert state_of(watcher, AWAY_ID) == {"user": alice_user, "cursor": "back"}
        await squatter.until(lambda: AWAY_ID in squatter.awareness)

        # With both processes live, each tells the other whose every presence is: a
        # client of Alice's that was only ever on process two leaves, and process one
        # refuses its id to another of Bob's sockets.
        carla = await open_client(two, document, alice, client_id=OTHER_AWAY_ID)
        opened.append(carla)
        await carla.set_presence({"cursor": "carla"})
        await watcher.until(lambda: OTHER_AWAY_ID in watcher.awareness)
        await carla.close()
        opened.remove(carla)
        await watcher.until(lambda: OTHER_AWAY_ID not in watcher.awareness)
        again = await open_client(one, document, bob, client_id=OTHER_AWAY_ID)
        opened.append(again)
        await again.send(awareness_frame([(OTHER_AWAY_ID, 10, json.dumps({"cursor": "again"}))]))
        await again.send(awareness_frame([(SQUATTER_NEXT_ID + 1, 1, "{}")]))
        await squatter.until(
            lambda: (
                OTHER_AWAY_ID in squatter.awareness or SQUATTER_NEXT_ID + 1 in squatter.awareness
            )
        )
        assert OTHER_AWAY_ID not in squatter.awareness
        assert OTHER_AWAY_ID not in watcher.awareness
    finally:
        for client in opened:
            await client.close()
