"""Restore while editors are connected (they receive it like any edit) and while one is
offline (its edits merge with the restore when it returns)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractUser
from pycrdt import XmlElement, XmlFragment, XmlText

from documents.history import Kind, current_content, restore_version, take_version
from documents.models import Document, DocumentVersion
from documents.rendering import load_fragment, to_text
from tests.collab.conftest import (  # noqa: F401  (fixtures)
    Connect,
    close_rooms,
    in_memory_layer,
    ws_connect,
)
from tests.collab.yclient import YClient

pytestmark = pytest.mark.django_db(transaction=True)


def fragment(client: YClient) -> XmlFragment:
    return client.doc.get("default", type=XmlFragment)


def text(client: YClient) -> str:
    return to_text(fragment(client))


def type_paragraph(client: YClient, words: str) -> None:
    paragraph = fragment(client).children.append(XmlElement("paragraph"))
    paragraph.children.append(XmlText(words))


@database_sync_to_async
def stored_text(document: Document) -> str:
    return to_text(load_fragment(current_content(document.pk).state))


@database_sync_to_async
def version_of(document: Document) -> DocumentVersion:
    # Named: the rooms' tick may have taken an automatic version of this content already.
    version = take_version(document.pk, kind=Kind.NAMED, name="checkpoint")
    assert version is not None
    return version


@database_sync_to_async
def restore(version: DocumentVersion, user: AbstractUser) -> None:
    restore_version(version, user=user)


async def test_both_connected_editors_receive_a_restore(
    ws_connect: Connect,  # noqa: F811  (the fixture imported above)
    alice: AbstractUser,
    staff: AbstractUser,
    document: Document,
) -> None:
    one = await ws_connect(alice, document, query="extensions=1")
    two = await ws_connect(staff, document, query="extensions=1")
    type_paragraph(one, "first")
    await two.until(lambda: text(two) == "first\n")
    await one.until(one.all_saved)
    old = await version_of(document)
    type_paragraph(two, "second")
    await one.until(lambda: text(one) == "first\n\nsecond\n")
    await two.until(two.all_saved)

    await restore(old, alice)

    await one.until(lambda: text(one) == "first\n")
    await two.until(lambda: text(two) == "first\n")
    assert await stored_text(document) == "first\n"
    # Still one shared document: a later edit reaches the other editor.
    type_paragraph(two, "after")
    await one.until(lambda: text(one) == "first\n\nafter\n")


async def test_an_offline_editor_merges_with_a_restore_on_return(
    ws_connect: Connect,  # noqa: F811  (the fixture imported above)
    alice: AbstractUser,
    document: Document,
) -> None:
    online = await ws_connect(alice, document, query="extensions=1")
    away = await ws_connect(alice, document, query="extensions=1")
    type_paragraph(online, "kept")
    await away.until(lambda: text(away) == "kept\n")
    await online.until(online.all_saved)
    old = await version_of(document)
    type_paragraph(online, "undone")
    await away.until(lambda: text(away) == "kept\n\nundone\n")
    await online.until(online.all_saved)

    await away.communicator.disconnect()
    type_paragraph(away, "written offline")  # sent nowhere: the socket is closed
    await restore(old, alice)
    await online.until(lambda: text(online) == "kept\n")

    # Back online: a new socket, the offline replica's state pushed like a provider does.
    back = await ws_connect(alice, document, query="extensions=1", hello=False)
    back.doc.apply_update(away.doc.get_update())
    await back.hello()
    await online.until(lambda: "written offline" in text(online))
    await back.until(lambda: text(back) == text(online))
    final = text(online)
    assert final.count("kept") == 1 and "undone" not in final
    assert sorted(final.split()) == ["kept", "offline", "written"]
    await back.until(back.all_saved)
    assert await stored_text(document) == final
