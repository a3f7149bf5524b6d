from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.sessions import InstanceSessionWrapper
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, Text

from collab import protocol
from collab.consumers import _unwrapped
from collab.persistence import aload_document
from collab.protocol import CloseCode
from collab.registry import registry
from documents.models import Document
from editor.asgi import application
from tests.collab.conftest import Connect, session_cookie
from yjs.awareness import Entry, encode_entries

pytestmark = pytest.mark.django_db(transaction=True)


async def stored_text(document: Document) -> str:
    """The document's text as PostgreSQL holds it (merged state plus log)."""
    stored = await aload_document(document.pk)
    doc = Doc()
    for update in stored.updates:
        doc.apply_update(update)
    return str(doc.get("text", type=Text))


async def test_two_clients_converge_and_edits_are_logged(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    one = await ws_connect(alice, document, query="extensions=1")
    two = await ws_connect(alice, document, query="extensions=1")
    one.text += "hello"
    await two.until(lambda: str(two.text) == "hello")
    two.text += " world"
    await one.until(lambda: str(one.text) == "hello world")
    await one.until(one.all_saved)
    await two.until(two.all_saved)
    assert await stored_text(document) == "hello world"


async def test_anonymous_sockets_are_refused_before_accept(
    ws_connect: Connect, document: Document
) -> None:
    with pytest.raises(PermissionError):
        await ws_connect(None, document)


async def test_users_without_access_are_refused_before_accept(
    ws_connect: Connect, bob: AbstractUser, document: Document
) -> None:
    with pytest.raises(PermissionError):
        await ws_connect(bob, document)


async def test_unknown_documents_are_refused_before_accept(
    ws_connect: Connect, alice: AbstractUser
) -> None:
    ghost = Document(owner=alice)  # never saved
    with pytest.raises(PermissionError):
        await ws_connect(alice, ghost)


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://localhost.evil.example:8000"]
)
async def test_foreign_origins_are_refused(
    ws_connect: Connect, alice: AbstractUser, document: Document, origin: str
) -> None:
    with pytest.raises(PermissionError):
        await ws_connect(alice, document, origin=origin)


async def test_staff_may_open_any_document(
    ws_connect: Connect, staff: AbstractUser, document: Document
) -> None:
    client = await ws_connect(staff, document)
    await client.until(lambda: len(client.frames) >= 1)
    assert client.frames[0][:2] == b"\x00\x00"  # the server's step 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("text", CloseCode.BAD_MESSAGE),
        (b"\x00\x02\x05ab", CloseCode.BAD_MESSAGE),
        (b"\x07", CloseCode.BAD_MESSAGE),
        (protocol.sync_update(b"\xff\xff\xff\xff\x0f\x00"), CloseCode.BAD_MESSAGE),
        (b"\x00\x02" + b"\x80\x20" + b"\x00" * 4096, CloseCode.TOO_LARGE),
    ],
)
async def test_a_bad_frame_closes_only_its_socket(
    ws_connect: Connect,
    alice: AbstractUser,
    document: Document,
    settings: object,
    frame: bytes | str,
    code: int,
) -> None:
    settings.COLLAB_MAX_MESSAGE_BYTES = 2048  # type: ignore[attr-defined]
    bad = await ws_connect(alice, document)
    good = await ws_connect(alice, document, query="extensions=1")
    if isinstance(frame, str):
        await bad.communicator.send_to(text_data=frame)
    else:
        await bad.communicator.send_to(bytes_data=frame)
    assert await bad.closed_with() == code
    good.text += "still fine"
    await good.until(good.all_saved)
    assert await stored_text(document) == "still fine"


async def test_presence_reaches_newcomers_and_leaves_with_the_socket(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    ada = await ws_connect(alice, document)
    await ada.set_presence('{"user":{"name":"Ada","color":"#c00"}}')
    watcher = await ws_connect(alice, document)
    await watcher.until(lambda: ada.doc.client_id in watcher.awareness)
    watcher.awareness.clear()
    await watcher.communicator.send_to(bytes_data=protocol.query_awareness())
    await watcher.until(lambda: ada.doc.client_id in watcher.awareness)
    await ada.communicator.disconnect()
    await watcher.until(lambda: ada.doc.client_id not in watcher.awareness)


async def test_a_socket_cannot_speak_for_another_client(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    ada = await ws_connect(alice, document)
    await ada.set_presence('{"says":"Ada"}')
    mallory = await ws_connect(alice, document)
    await mallory.set_presence('{"says":"Mallory"}')
    forged = Entry(ada.doc.client_id, 99, '{"says":"Not Ada"}')
    await mallory.communicator.send_to(bytes_data=protocol.awareness(encode_entries([forged])))
    watcher = await ws_connect(alice, document)
    await watcher.until(lambda: len(watcher.awareness) == 2)
    assert json.loads(watcher.awareness[ada.doc.client_id])["says"] == "Ada"


async def test_the_document_survives_its_room(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    writer = await ws_connect(alice, document, query="extensions=1")
    writer.text += "persisted"
    await writer.until(writer.all_saved)
    await writer.communicator.disconnect()
    await asyncio.wait_for(registry._unloading[document.pk], timeout=5)
    assert document.pk not in registry.rooms
    reader = await ws_connect(alice, document)
    await reader.until(lambda: str(reader.text) == "persisted")


async def test_a_handshake_without_origin_is_refused(
    alice: AbstractUser, document: Document
) -> None:
    # Browsers always send Origin; a missing one is refused rather than trusted.
    cookie = await database_sync_to_async(session_cookie)(alice)
    communicator = WebsocketCommunicator(
        application, f"/ws/documents/{document.pk}", headers=[(b"cookie", cookie.encode())]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_frames_are_written_below_the_session_middleware() -> None:
    sent: list[dict[str, object]] = []

    async def transport_send(message: dict[str, object]) -> None:
        sent.append(message)

    wrapper = InstanceSessionWrapper({"cookies": {}}, transport_send)
    send = _unwrapped(wrapper.send)
    assert send is transport_send
    await send({"type": "websocket.send", "bytes": b"\x00"})
    assert sent == [{"type": "websocket.send", "bytes": b"\x00"}]
    assert _unwrapped(transport_send) is transport_send
