"""Presence tells the truth: the name and colour others see are the socket's account, and
a client id stays its user's while the client is away, on every process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from django.contrib.auth.models import AbstractUser

from collab import fanout, protocol
from collab.owners import ClientOwners
from collab.rooms import Room
from documents.models import Document, Role
from documents.people import presence_user, user_colour
from documents.sharing import share_with
from tests.collab.conftest import Connect
from tests.collab.fakes import FakeConnection
from tests.collab.yclient import YClient
from yjs.awareness import Entry, decode_entries, encode_entries

pytestmark = pytest.mark.django_db(transaction=True)


async def announce(client: YClient, client_id: int, clock: int, state: str) -> None:
    """An awareness frame for any client id, as a modified client can send it."""
    frame = protocol.awareness(encode_entries([Entry(client_id, clock, state)]))
    await client.communicator.send_to(bytes_data=frame)


def removals(frames: list[bytes], client_id: int) -> int:
    """How many times `frames` told a client that `client_id` left."""
    count = 0
    for frame in frames:
        if frame[:1] == bytes([protocol.MessageType.AWARENESS]):
            payload = protocol.parse_message(frame).payload
            count += sum(
                1 for e in decode_entries(payload) if e.client_id == client_id and e.state == "null"
            )
    return count


async def test_presence_shows_the_sockets_account_whatever_the_client_claims(
    ws_connect: Connect, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    bob.first_name, bob.last_name = "Bob", "Builder"
    await database_sync_to_async(bob.save)()
    await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
    watcher = await ws_connect(alice, document)
    viewer = await ws_connect(bob, document)
    claimed = {"user": {"id": alice.pk, "name": "alice", "color": user_colour(alice)}}
    await viewer.set_presence(json.dumps({**claimed, "cursor": {"anchor": 3}}))
    await watcher.until(lambda: viewer.doc.client_id in watcher.awareness)
    truth = {"id": bob.pk, "name": "Bob Builder", "color": user_colour(bob)}
    assert truth == presence_user(bob)
    assert json.loads(watcher.awareness[viewer.doc.client_id]) == {
        "user": truth,
        "cursor": {"anchor": 3},
    }
    # A state without a user gets one; the rest of it passes as it came.
    await viewer.set_presence('{"cursor":null,"note":"ünïcode"}', clock=2)
    await watcher.until(lambda: "note" in watcher.awareness[viewer.doc.client_id])
    assert json.loads(watcher.awareness[viewer.doc.client_id]) == {
        "user": truth,
        "cursor": None,
        "note": "ünïcode",
    }
    # Newcomers get the rewritten state too, from the room's table.
    late = await ws_connect(alice, document)
    await late.until(lambda: viewer.doc.client_id in late.awareness)
    assert json.loads(late.awareness[viewer.doc.client_id])["user"] == truth


async def test_a_departed_clients_id_stays_its_users(
    ws_connect: Connect, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    await database_sync_to_async(share_with)(document, "bob", Role.VIEWER)
    watcher = await ws_connect(alice, document)
    ada = await ws_connect(alice, document)
    away = ada.doc.client_id
    await ada.set_presence('{"cursor":1}')
    await watcher.until(lambda: away in watcher.awareness)
    await ada.communicator.disconnect()
    await watcher.until(lambda: away not in watcher.awareness)

    squatter = await ws_connect(bob, document)
    await announce(squatter, away, 5, '{"cursor":2}')
    # Refused that id, the socket may still speak for the next one it announces.
    await squatter.set_presence('{"cursor":3}')
    await watcher.until(
        lambda: away in watcher.awareness or squatter.doc.client_id in watcher.awareness
    )
    assert away not in watcher.awareness
    assert json.loads(watcher.awareness[squatter.doc.client_id])["user"]["name"] == "bob"

    # Alice's client comes back with its id (and a clock below the squatter's).
    back = await ws_connect(alice, document)
    await announce(back, away, 2, '{"cursor":4}')
    await watcher.until(lambda: away in watcher.awareness)
    assert json.loads(watcher.awareness[away]) == {"user": presence_user(alice), "cursor": 4}


async def test_the_same_user_takes_back_an_id_whose_socket_is_not_gone_yet(
    ws_connect: Connect, alice: AbstractUser, document: Document
) -> None:
    watcher = await ws_connect(alice, document)
    old = await ws_connect(alice, document)
    client_id = old.doc.client_id
    await old.set_presence('{"cursor":1}')
    await watcher.until(lambda: client_id in watcher.awareness)
    # The client reconnected before the server noticed its old socket was dead.
    new = await ws_connect(alice, document)
    await announce(new, client_id, 2, '{"cursor":2}')
    await watcher.until(lambda: json.loads(watcher.awareness[client_id])["cursor"] == 2)
    # The old socket's end does not take away the presence the new one holds.
    await old.communicator.disconnect()
    await announce(new, client_id, 3, '{"cursor":3}')
    await watcher.until(lambda: json.loads(watcher.awareness[client_id])["cursor"] == 3)
    assert removals(watcher.frames, client_id) == 0
    await new.communicator.disconnect()
    await watcher.until(lambda: client_id not in watcher.awareness)


# Across processes: two rooms of one document on one in-memory layer (tests/e2e runs the
# same through two server processes and Redis).


@pytest.fixture
async def two_rooms(document: Document) -> AsyncIterator[tuple[Room, Room]]:
    layer = InMemoryChannelLayer()
    rooms = Room(document.pk, layer), Room(document.pk, layer)
    try:
        yield rooms
    finally:
        for room in rooms:
            await room.stop()


async def test_another_process_learns_whose_ids_are_whose(
    document: Document, two_rooms: tuple[Room, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A room alone publishes nothing: what the second room learns, it learns from
    # the reply to its hello.
    monkeypatch.setattr(fanout, "PEER_GRACE_SECONDS", 0.0)
    room_a, room_b = two_rooms
    await room_a.start()
    watcher, ada = FakeConnection(user_id=1), FakeConnection(user_id=1)
    room_a.add(watcher)
    room_a.add(ada)
    await room_a.receive(watcher, protocol.awareness(encode_entries([Entry(10, 1, "{}")])))
    await room_a.receive(ada, protocol.awareness(encode_entries([Entry(11, 1, "{}")])))
    room_a.remove(ada)
    assert 11 not in watcher.presence and room_a.stats["publish_skipped"] > 0

    await room_b.start()
    squatter = FakeConnection(user_id=2)
    room_b.add(squatter)
    await squatter.until(lambda: 10 in squatter.presence)  # the hello was answered
    await room_b.receive(squatter, protocol.awareness(encode_entries([Entry(11, 5, "{}")])))
    await room_b.receive(squatter, protocol.awareness(encode_entries([Entry(12, 1, "{}")])))
    await watcher.until(lambda: 12 in watcher.presence or 11 in watcher.presence)
    assert 11 not in watcher.presence and 11 not in squatter.presence

    # Ada is back on the second process; then gone again, and another user's socket on
    # the first process tries her id: refused there too.
    back = FakeConnection(user_id=1)
    room_b.add(back)
    await room_b.receive(back, protocol.awareness(encode_entries([Entry(11, 2, "{}")])))
    await watcher.until(lambda: 11 in watcher.presence)
    assert json.loads(watcher.presence[11])["user"] == back.presence_user
    room_b.remove(back)
    await watcher.until(lambda: 11 not in watcher.presence)
    other = FakeConnection(user_id=3)
    room_a.add(other)
    await room_a.receive(other, protocol.awareness(encode_entries([Entry(11, 9, "{}")])))
    await room_a.receive(other, protocol.awareness(encode_entries([Entry(13, 1, "{}")])))
    await squatter.until(lambda: 13 in squatter.presence or 11 in squatter.presence)
    assert 11 not in squatter.presence and 11 not in watcher.presence


# The table's bounds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_its_users_until_it_was_unseen_for_the_keep_time() -> None:
    clock = Clock()
    owners = ClientOwners(keep_seconds=60, clock=clock)
    assert owners.claim(1, user_id=7)
    assert not owners.claim(1, user_id=8)  # held
    owners.release(1)
    clock.now = 59
    assert not owners.claim(1, user_id=8)  # away, still Alice's
    assert not owners.learn(1, user_id=8)
    assert owners.claim(1, user_id=7)  # hers to take back
    clock.now = 10_000
    assert not owners.claim(1, user_id=8)  # held: never expires
    owners.release(1)
    clock.now = 10_061
    assert owners.claim(1, user_id=8)
    assert owners.known() == [(1, 8)]


def test_a_user_claiming_many_ids_pushes_out_only_their_own() -> None:
    owners = ClientOwners(per_user=3, limit=100, clock=Clock())
    assert owners.claim(1, user_id=7)
    owners.release(1)
    for client_id in range(100, 200):
        assert owners.claim(client_id, user_id=8)
        owners.release(client_id)
    assert len(owners) == 4
    assert not owners.claim(1, user_id=8)
    assert {owner for _, owner in owners.known()} == {7, 8}


def test_the_table_is_bounded_but_keeps_ids_held_here() -> None:
    owners = ClientOwners(per_user=1_000, limit=10, clock=Clock())
    for client_id in range(5):
        assert owners.claim(client_id, user_id=client_id)  # held by sockets here
    for client_id in range(100, 200):
        assert owners.learn(client_id, user_id=client_id)
    assert len(owners) == 10
    assert all(owners.held(client_id) for client_id in range(5))
    assert [owner for client_id, owner in owners.known() if client_id >= 100] == list(
        range(195, 200)
    )
    # Held ids beyond the limit are kept: there are no more of them than sockets.
    for client_id in range(5, 20):
        assert owners.claim(client_id, user_id=client_id)
    assert len(owners) == 20
