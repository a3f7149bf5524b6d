"""Roles, revocation, sessions and limits as the realtime layer enforces them, through
the real ASGI application."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.models import Session

from collab import protocol
from collab.limits import TokenBucket
from collab.protocol import CloseCode
from collab.registry import registry
from documents.models import Document, Role
from documents.sharing import (
    access_changed,
    create_link,
    join_via_link,
    remove_person,
    share_with,
)
from tests.collab.conftest import Connect
from tests.collab.fakes import typed
from tests.collab.test_consumers import stored_text
from yjs.awareness import Entry, encode_entries

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = {
    "step1": protocol.sync_step1(b"\x00"),
    "step2": protocol.sync_step2(typed("step2", client_id=77, name="text")[0]),
    "update": protocol.sync_update(typed("update", client_id=78, name="text")[0]),
    "awareness": protocol.awareness(encode_entries([Entry(79, 1, '{"user":{"name":"X"}}')])),
    "query": protocol.query_awareness(),
}


async def person(role: str, alice: AbstractUser, bob: AbstractUser, document: Document):  # type: ignore[no-untyped-def]
    if role == "owner":
        return alice
    if role in ("editor", "viewer"):
        await database_sync_to_async(share_with)(document, "bob", role)
    elif role.startswith("link-"):
        link = await database_sync_to_async(create_link)(
            document, role.removeprefix("link-"), created_by=alice
        )
        await database_sync_to_async(join_via_link)(link.token, bob)
    return bob


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize(
    ("role", "writes"),
    [
        ("owner", True),
        ("editor", True),
        ("viewer", False),
        ("link-editor", True),
        ("link-viewer", False),
    ],
)
async def test_role_by_message_matrix(
    ws_connect: Connect,
    alice: AbstractUser,
    bob: AbstractUser,
    document: Document,
    role: str,
    writes: bool,
    message: str,
) -> None:
    user = await person(role, alice, bob, document)
    watcher = await ws_connect(alice, document, query="extensions=1")
    client = await ws_connect(user, document, hello=False)
    await client.communicator.send_to(bytes_data=MESSAGES[message])
    if message == "step1":
        await client.until(lambda: any(f[:2] == b"\x00\x01" for f in client.frames))
    elif message == "query":
        await watcher.set_presence('{"user":{"name":"Alice"}}')
        await client.until(lambda: watcher.doc.client_id in client.awareness)
    elif message == "awareness":
        # Presence is allowed for every role (COLLAB_VIEWER_PRESENCE defaults to true).
        await watcher.until(lambda: 79 in watcher.awareness)
    else:
        expected = message if writes else ""
        if writes:
            await watcher.until(lambda: str(watcher.text) == expected)
        else:
            await client.until(lambda: client.denied)
        # A marker edit from the owner, saved, proves the log holds nothing else.
        await watcher.until(watcher.all_saved)
        assert await stored_text(document) == expected


@pytest.mark.parametrize("role", ["stranger", "anonymous"])
async def test_strangers_and_anonymous_users_never_get_a_socket(
    ws_connect: Connect, bob: AbstractUser, document: Document, role: str
) -> None:
    with pytest.raises(PermissionError):
        await ws_connect(bob if role == "stranger" else None, document)


async def test_viewer_presence_can_be_hidden(
    ws_connect: Connect,
    alice: AbstractUser,
    bob: AbstractUser,
    document: Document,
    settings: object,
) -> None:
    settings.COLLAB_VIEWER_PRESENCE = False  # type: ignore[attr-defined]
    await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
    owner = await ws_connect(alice, document)
    viewer = await ws_connect(bob, document)
    await viewer.set_presence('{"user":{"name":"Bob"}}')
    # The viewer hears its own state back (a keep-alive) ...
    await viewer.until(lambda: viewer.doc.client_id in viewer.awareness)
    await owner.set_presence('{"user":{"name":"Alice"}}')
    await owner.until(lambda: owner.doc.client_id in owner.awareness)
    # ... and others never hear it.
    assert viewer.doc.client_id not in owner.awareness


async def test_revoking_access_closes_the_live_socket(
    ws_connect: Connect, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    editor = await ws_connect(bob, document)
    await editor.until(lambda: len(editor.frames) >= 1)
    await database_sync_to_async(remove_person)(document, bob.pk)
    assert await editor.closed_with() == CloseCode.ACCESS_REVOKED


async def test_downgrading_stops_writes_on_the_live_socket(
    ws_connect: Connect, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    await database_sync_to_async(share_with)(document, "bob", Role.EDITOR)
    owner = await ws_connect(alice, document, query="extensions=1")
    editor = await ws_connect(bob, document)
    editor.text += "before"
    await owner.until(lambda: str(owner.text) == "before")
    await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
    room = registry.rooms[document.pk]
    await room.recheck_access()  # the group message may still be on its way
    editor.text += " after"
    await editor.until(lambda: editor.denied)
    await owner.until(owner.all_saved)
    assert await stored_text(document) == "before"


async def test_signing_out_elsewhere_closes_the_socket(
    ws_connect: Connect, alice: AbstractUser, document: Document, settings: object
) -> None:
    settings.COLLAB_ACCESS_RECHECK_SECONDS = 0.1  # type: ignore[attr-defined]
    client = await ws_connect(alice, document)
    await client.until(lambda: len(client.frames) >= 1)
    await database_sync_to_async(Session.objects.all().delete)()
    assert await client.closed_with(timeout=10) == CloseCode.NOT_SIGNED_IN


def test_a_fast_typist_is_never_limited() -> None:
    bucket = TokenBucket(rate=60, burst=300)
    # 15 keystrokes a second for ten minutes.
    assert all(bucket.take(now=i / 15) for i in range(15 * 600))
    flood = TokenBucket(rate=60, burst=300)
    assert not all(flood.take(now=0.0) for _ in range(301))


async def test_a_document_at_its_size_limit_refuses_writes_with_a_clear_error(
    ws_connect: Connect, alice: AbstractUser, document: Document, settings: object
) -> None:
    settings.COLLAB_MAX_DOCUMENT_BYTES = 2048  # type: ignore[attr-defined]
    client = await ws_connect(alice, document)
    client.text += "x" * 4000
    assert await client.closed_with() == CloseCode.TOO_LARGE
    assert client.denied
    assert await stored_text(document) == ""


async def test_oversized_presence_is_ignored(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    big = await ws_connect(alice, document)
    await big.set_presence('{"pad":"' + "x" * 5000 + '"}')
    await big.set_presence('{"pad":"small"}', clock=2)
    watcher = await ws_connect(alice, document)
    await watcher.until(lambda: big.doc.client_id in watcher.awareness)
    assert json.loads(watcher.awareness[big.doc.client_id])["pad"] == "small"


async def test_fast_presence_is_coalesced_not_refused(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    mover = await ws_connect(alice, document)
    watcher = await ws_connect(alice, document)
    for clock in range(1, 201):
        await mover.set_presence(f'{{"cursor":{clock}}}', clock=clock)
    # Echoes of somebody else's presence, as stock clients send them, cost nothing.
    echo = Entry(watcher.doc.client_id, 1, "{}")
    for _ in range(200):
        await mover.communicator.send_to(bytes_data=protocol.awareness(encode_entries([echo])))
    await watcher.until(
        lambda: json.loads(watcher.awareness.get(mover.doc.client_id, "{}")).get("cursor") == 200
    )
    room = registry.rooms[document.pk]
    assert room.stats["presence_coalesced"] > 0
    assert not any(m.connection.closed for m in room.members.values())


async def test_trashing_closes_open_editors_as_gone(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    client = await ws_connect(alice, document)
    await client.until(lambda: len(client.frames) >= 1)

    def trash() -> None:
        document.deleted_at = document.created_at
        document.save(update_fields=["deleted_at"])
        access_changed(document)

    await database_sync_to_async(trash)()
    assert await client.closed_with() == CloseCode.DOCUMENT_GONE
