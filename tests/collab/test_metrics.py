from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import AsyncClient
from prometheus_client import REGISTRY

from collab import protocol
from collab.protocol import CloseCode
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


def rejected(code: int, reason: str) -> float:
    labels = {"code": str(code), "reason": reason}
    return REGISTRY.get_sample_value("collab_rejected_frames_total", labels) or 0.0


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        ("text", CloseCode.BAD_MESSAGE, "text_frame"),
        (b"\x00\x02" + b"\x80\x20" + b"\x00" * 4096, CloseCode.TOO_LARGE, "frame_too_large"),
        (b"\x07", CloseCode.BAD_MESSAGE, "protocol_error"),
        (
            protocol.sync_update(b"\xff\xff\xff\xff\x0f\x00"),
            CloseCode.BAD_MESSAGE,
            "invalid_update",
        ),
    ],
)
async def test_a_rejected_frame_is_counted_and_logged_with_its_fields(
    ws_connect: Connect,
    alice: AbstractUser,
    document: Document,
    settings: object,
    caplog: pytest.LogCaptureFixture,
    frame: bytes | str,
    code: int,
    reason: str,
) -> None:
    settings.COLLAB_MAX_MESSAGE_BYTES = 2048  # type: ignore[attr-defined]
    before = rejected(code, reason)
    client = await ws_connect(alice, document)
    if isinstance(frame, str):
        await client.communicator.send_to(text_data=frame)
    else:
        await client.communicator.send_to(bytes_data=frame)
    assert await client.closed_with() == code
    assert rejected(code, reason) - before == 1
    [record] = [r for r in caplog.records if r.name == "collab.consumers"]
    assert record.levelname == "WARNING"
    assert (record.document_id, record.user_id) == (document.pk, alice.pk)  # type: ignore[attr-defined]
    assert (record.close_code, record.reason) == (code, reason)  # type: ignore[attr-defined]
