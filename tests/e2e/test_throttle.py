"""A client far over its update budget against a real server process: TCP holds its frames
back while the server reads them at the budget's pace, the server's keepalive does not
mistake the wait for a dead peer, and every update lands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pycrdt import Doc, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from collab.persistence import load_document
from documents.models import Document
from tests.e2e.pyclient import (
    EMPTY_UPDATE,
    SAVED,
    STEP1,
    SYNC,
    read_var_uint,
    sync_step2,
    sync_update,
)
from tests.e2e.servers import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RATE, BURST = 500, 300
UPDATES = 6000
PING = "1"


def session_cookie(user: AbstractUser) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def typed(count: int) -> tuple[list[bytes], str]:
    doc = Doc(client_id=777)
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for index in range(count):
        text += chr(ord("a") + index % 26)
    return updates, str(text)


async def flood(server: ServerProcess, room: str, cookie: str, updates: list[bytes]) -> float:
    """Send every update at once and wait until the server says all are committed; the
    seconds that took. Raises ConnectionClosed if the server closes the socket."""
    async with connect(
        f"{server.ws_url}/{room}?extensions=1",
        origin=server.http_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        compression=None,
        proxy=None,
        ping_interval=None,  # it answers the server's pings, as browsers do
    ) as ws:
        started = time.monotonic()
        writes = len(updates)

        async def send_all() -> None:
            for update in updates:
                await ws.send(sync_update(update))

        sender = asyncio.ensure_future(send_all())
        try:
            async with asyncio.timeout(60):
                async for message in ws:
                    assert isinstance(message, bytes)
                    kind, pos = read_var_uint(message, 0)
                    if kind == SYNC and read_var_uint(message, pos)[0] == STEP1:
                        writes += 1
                        await ws.send(sync_step2(EMPTY_UPDATE))
                    elif kind == SAVED and read_var_uint(message, pos)[0] == writes:
                        break
        finally:
            sender.cancel()
        return time.monotonic() - started


def test_a_client_far_over_its_budget_is_slowed_by_tcp_and_kept_through_pings(
    start_server: Callable[..., ServerProcess], alice: AbstractUser
) -> None:
    server = start_server(
        "throttle",
        env={"COLLAB_UPDATES_PER_SECOND": str(RATE), "COLLAB_UPDATES_BURST": str(BURST)},
        # The pongs come behind ~10 s of frames the server has not read yet.
        args=["--ws-ping-interval", PING, "--ws-ping-timeout", PING],
    )
    document = Document.objects.create(owner=alice, title="flood")
    updates, text = typed(UPDATES)
    try:
        took = asyncio.run(flood(server, str(document.pk), session_cookie(alice), updates))
    except ConnectionClosed as closed:
        # Before: 4429 at once; without collab/websocket_protocol.py, 1011 ("keepalive
        # ping timeout") after two seconds.
        pytest.fail(f"the server closed the socket: {closed.rcvd}")
    assert took >= (UPDATES - BURST) / RATE
    stored = Doc()
    for update in load_document(document.pk).updates:
        stored.apply_update(update)
    assert str(stored.get("text", type=Text)) == text
