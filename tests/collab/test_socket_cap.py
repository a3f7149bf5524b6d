"""The per-user cap on open sockets (COLLAB_MAX_SOCKETS_PER_USER), through the real ASGI
application and the real Redis the counts are shared in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from django.contrib.auth.models import AbstractUser
from redis.asyncio import Redis

from collab.consumers import TOO_MANY_SOCKETS_REASON
from collab.protocol import CloseCode
from collab.socket_cap import TTL_SECONDS, socket_counts
from documents.models import Document
from tests.collab.conftest import Connect
from tests.collab.yclient import YClient

pytestmark = pytest.mark.django_db(transaction=True)


async def close_of(client: YClient, timeout: float = 5.0) -> tuple[int, str]:
    """The code and reason the server closed the socket with."""
    async with asyncio.timeout(timeout):
        while True:
            output = await client.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return int(output["code"]), str(output.get("reason") or "")
            client.handle(output["bytes"])


async def served(client: YClient) -> None:
    """The socket is open and the room answers it (its sync step 1 arrived)."""
    await client.until(lambda: len(client.frames) >= 1)


@pytest.fixture
async def redis_client(settings) -> AsyncIterator[Redis]:  # type: ignore[no-untyped-def]
    client = Redis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


async def test_the_socket_over_the_default_cap_closes_with_4409_and_a_notice(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    other = await Document.objects.acreate(owner=alice, title="Other")
    # The real default: nothing in the test settings changes it.
    from collab.conf import conf

    assert conf.MAX_SOCKETS_PER_USER == 50
    # Spread over two documents: the cap is per user, not per document.
    clients = [await ws_connect(alice, (document, other)[i % 2]) for i in range(50)]
    await asyncio.gather(*(served(client) for client in clients))

    refused = await ws_connect(alice, other)
    assert await close_of(refused) == (CloseCode.TOO_MANY_SOCKETS, TOO_MANY_SOCKETS_REASON)
    assert socket_counts.local[alice.pk] == 50

    # One closes: the next one fits again, and everybody else stayed connected.
    await clients.pop().communicator.disconnect()
    again = await ws_connect(alice, document)
    await served(again)
    clients[0].text += "still here"
    await clients[2].until(lambda: str(clients[2].text) == "still here")


async def test_another_users_sockets_do_not_count(
    ws_connect: Connect, settings, alice: AbstractUser, staff: AbstractUser, document: Document
) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_MAX_SOCKETS_PER_USER = 2
    for _ in range(2):
        await served(await ws_connect(alice, document))
    await served(await ws_connect(staff, document))
    assert (await close_of(await ws_connect(alice, document)))[0] == CloseCode.TOO_MANY_SOCKETS


async def test_zero_means_no_cap(
    ws_connect: Connect, settings, alice: AbstractUser, document: Document
) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_MAX_SOCKETS_PER_USER = 0
    clients = [await ws_connect(alice, document) for _ in range(55)]
    await asyncio.gather(*(served(client) for client in clients))
    assert alice.pk not in socket_counts.local  # not even counted


async def test_sockets_on_another_process_count_until_it_is_gone(
    ws_connect: Connect,
    settings,  # type: ignore[no-untyped-def]
    alice: AbstractUser,
    document: Document,
    redis_client: Redis,
) -> None:
    settings.COLLAB_MAX_SOCKETS_PER_USER = 3
    await served(await ws_connect(alice, document))  # creates this process's counts
    shared = socket_counts._shared
    assert shared is not None
    # Another process, as it looks in Redis: two of Alice's sockets in its hash, which
    # it renews while alive and which expires when it dies.
    ghost = shared.prefix + "ghost-process"
    await redis_client.hset(ghost, str(alice.pk), 2)
    await redis_client.pexpire(ghost, 400)
    await redis_client.sadd(shared.names_key, "ghost-process")

    assert (await close_of(await ws_connect(alice, document)))[0] == CloseCode.TOO_MANY_SOCKETS

    # Key expiry has no event to wait on: poll, bounded.
    async with asyncio.timeout(5):
        while await redis_client.exists(ghost):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await served(await ws_connect(alice, document))
    # The dead process's name was dropped by the script that found its hash gone.
    assert not await redis_client.sismember(shared.names_key, "ghost-process")
    assert 1 < TTL_SECONDS <= 60


async def test_a_process_that_lost_its_hash_writes_it_back(
    ws_connect: Connect,
    settings,  # type: ignore[no-untyped-def]
    alice: AbstractUser,
    document: Document,
    redis_client: Redis,
) -> None:
    settings.COLLAB_MAX_SOCKETS_PER_USER = 5
    for _ in range(2):
        await served(await ws_connect(alice, document))
    shared = socket_counts._shared
    assert shared is not None
    await redis_client.delete(shared.key)  # as if this process had stalled past the TTL
    await shared.renew()
    assert await redis_client.hget(shared.key, str(alice.pk)) == b"2"
    assert await redis_client.ttl(shared.key) > 0


async def test_without_redis_the_cap_holds_per_process(
    ws_connect: Connect, settings, alice: AbstractUser, document: Document
) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_MAX_SOCKETS_PER_USER = 2
    # Nothing listens on port 1: every Redis call fails at once.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    first = await ws_connect(alice, document)
    await served(first)
    await served(await ws_connect(alice, document))
    assert (await close_of(await ws_connect(alice, document)))[0] == CloseCode.TOO_MANY_SOCKETS
    await first.communicator.disconnect()
    await served(await ws_connect(alice, document))


async def test_a_graceful_stop_takes_the_counts_out_of_redis(
    ws_connect: Connect,
    settings,  # type: ignore[no-untyped-def]
    alice: AbstractUser,
    document: Document,
    redis_client: Redis,
) -> None:
    settings.COLLAB_MAX_SOCKETS_PER_USER = 5
    await served(await ws_connect(alice, document))
    shared = socket_counts._shared
    assert shared is not None
    assert await redis_client.exists(shared.key)
    await socket_counts.aclose()
    assert not await redis_client.exists(shared.key)
    assert not await redis_client.sismember(shared.names_key, shared.name)
