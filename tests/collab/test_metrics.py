from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import AsyncClient

from documents.models import Document
from tests.collab.conftest import Connect

pytestmark = pytest.mark.django_db(transaction=True)


def sample(body: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_connections_rooms_updates_and_commits(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    before = (await AsyncClient().get("/metrics")).content.decode()
    client = await ws_connect(alice, document, query="extensions=1")
    client.text += "counted"
    await client.until(client.all_saved)
    response = await AsyncClient().get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    after = response.content.decode()
    assert sample(after, "collab_connections") - sample(before, "collab_connections") == 1
    assert sample(after, "collab_rooms_open") - sample(before, "collab_rooms_open") == 1
    # The edit may also travel in the client's reply to the server's step 1.
    for name in ("collab_updates_total", "collab_commit_seconds_count"):
        assert sample(after, name) - sample(before, name) >= 1, name
