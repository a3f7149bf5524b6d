"""Throttling, not dropping: a socket that sends faster than its budgets is slowed (the
consumer stops reading it until a token is due), and only a socket held back without a
break for `COLLAB_FLOOD_AFTER_SECONDS` is closed with 4429. Through the real ASGI
application; the TCP side of "stops reading" is in test_websocket_protocol.py and the
trace replay in tests/convergence/test_throttled_trace.py."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import AbstractUser

from collab import protocol
from collab.limits import TokenBucket
from collab.protocol import CloseCode, MessageType, SyncStep
from documents.models import Document
from tests.collab.conftest import Connect
from tests.collab.fakes import typed
from tests.collab.test_consumers import stored_text

pytestmark = pytest.mark.django_db(transaction=True)

RATE, BURST = 100, 20


async def test_a_client_at_five_times_its_update_budget_is_slowed_and_every_update_lands(
    ws_connect: Connect, alice: AbstractUser, document: Document, settings: object
) -> None:
    settings.COLLAB_UPDATES_PER_SECOND = RATE  # type: ignore[attr-defined]
    settings.COLLAB_UPDATES_BURST = BURST  # type: ignore[attr-defined]
    writer = await ws_connect(alice, document, query="extensions=1")
    reader = await ws_connect(alice, document)
    chunks = [chr(ord("a") + i % 26) for i in range(250)]
    updates = typed(*chunks, client_id=4242, name="text")
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def send_at_five_times_the_budget() -> None:
        for index, update in enumerate(updates):
            await asyncio.sleep(max(0.0, started + index / (5 * RATE) - loop.time()))
            await writer.communicator.send_to(bytes_data=protocol.sync_update(update))

    sender = asyncio.ensure_future(send_at_five_times_the_budget())
    # Closed with 4429 before this change: `until` raises ConnectionError on a close.
    await writer.until(lambda: writer.saved == len(updates) + writer.writes_sent, timeout=20)
    took = loop.time() - started
    await sender
    # Slowed to the budget: the burst at once, then RATE a second.
    assert took >= (len(updates) - BURST) / RATE
    await reader.until(lambda: str(reader.text) == "".join(chunks), timeout=10)
    assert await stored_text(document) == "".join(chunks)


async def test_frames_beyond_the_frame_budget_are_slowed_not_refused(
    ws_connect: Connect, alice: AbstractUser, document: Document, settings: object
) -> None:
    settings.COLLAB_FRAMES_PER_SECOND = RATE  # type: ignore[attr-defined]
    settings.COLLAB_FRAMES_BURST = BURST  # type: ignore[attr-defined]
    client = await ws_connect(alice, document, hello=False)
    asked = 150
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(asked):
        await client.communicator.send_to(bytes_data=protocol.sync_step1(b"\x00"))

    def answers() -> int:
        return sum(
            1
            for frame in client.frames
            if frame[0] == MessageType.SYNC and frame[1] == SyncStep.STEP2
        )

    await client.until(lambda: answers() == asked, timeout=15)
    # The client's own reply to the server's step 1 is a frame too.
    assert loop.time() - started >= (asked - BURST) / RATE


async def test_a_socket_held_back_past_the_flood_limit_is_closed_with_4429(
    ws_connect: Connect, alice: AbstractUser, document: Document, settings: object
) -> None:
    settings.COLLAB_UPDATES_PER_SECOND = RATE  # type: ignore[attr-defined]
    settings.COLLAB_UPDATES_BURST = BURST  # type: ignore[attr-defined]
    settings.COLLAB_FLOOD_AFTER_SECONDS = 0.5  # type: ignore[attr-defined]
    writer = await ws_connect(alice, document, query="extensions=1", hello=False)
    updates = typed(*["x"] * 2000, client_id=4343, name="text")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for update in updates:
        await writer.communicator.send_to(bytes_data=protocol.sync_update(update))
    assert await writer.closed_with(timeout=10) == CloseCode.RATE_LIMITED
    took = loop.time() - started
    # Held back for the flood limit first (slowed, not refused), then closed: what it
    # was let through in that time landed, the rest did not.
    assert took >= 0.5
    landed = len(await stored_text(document))
    assert BURST < landed < len(updates)


def test_a_bucket_tells_how_long_until_the_next_token() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    assert bucket.reserve(now=0.0) == 0.0
    assert bucket.reserve(now=0.0) == 0.0
    # Empty: the next token is due in 1/rate, the one after in 2/rate if nobody waits.
    assert bucket.reserve(now=0.0) == pytest.approx(0.1)
    assert bucket.behind(now=0.0) == 0.0
    # The consumer waited for it and came back with the next frame at once.
    assert bucket.reserve(now=0.1) == pytest.approx(0.1)
    assert bucket.behind(now=0.2) == pytest.approx(0.2)
    assert bucket.reserve(now=0.2) == pytest.approx(0.1)
    # A break long enough for a whole token ends the backlog.
    assert bucket.reserve(now=0.45) == 0.0
    assert bucket.behind(now=0.45) == 0.0
