from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, Text

from collab.persistence import aload_document
from documents.models import Document
from tests.collab.conftest import Connect

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
