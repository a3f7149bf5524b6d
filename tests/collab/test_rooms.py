from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from pycrdt import Text

from collab import fanout, memory, persistence, protocol
from collab import journal as journal_module
from collab import registry as registry_module
from collab import rooms as rooms_module
from collab.persistence import append_updates, load_document
from collab.protocol import CloseCode
from collab.registry import registry
from collab.rooms import Room
from documents.models import Document, DocumentUpdate
from tests.collab.fakes import FakeConnection, typed
from yjs.awareness import Entry, encode_entries, with_user
from yjs.updates import InvalidUpdate

pytestmark = pytest.mark.django_db(transaction=True)

stored_rows = database_sync_to_async(
    lambda document: DocumentUpdate.objects.filter(document=document).count()
)


async def stored_text(document: Document) -> str:
    stored = await database_sync_to_async(load_document)(document.pk)
    probe = FakeConnection()
    for update in stored.updates:
        probe.doc.apply_update(update)
    return probe.text


@pytest.fixture(autouse=True)
async def close_rooms() -> AsyncIterator[None]:
    yield
    await registry.aclose_all()


async def test_concurrent_joins_load_the_document_once(
    document: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = 0
    real_load = rooms_module.aload_document

    async def counting_load(document_id):  # type: ignore[no-untyped-def]
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)  # widen the window in which joins overlap
        return await real_load(document_id)

    monkeypatch.setattr(rooms_module, "aload_document", counting_load)
    connections = [FakeConnection() for _ in range(10)]
    joined = await asyncio.gather(*(registry.join(document.pk, c) for c in connections))
    assert loads == 1
    assert len({id(room) for room in joined}) == 1
    assert len(joined[0].members) == 10


async def test_room_unloads_after_the_grace_period_once_everything_is_stored(
    document: Document,
) -> None:
    connection = FakeConnection()
    room = await registry.join(document.pk, connection)
    await room.receive(connection, protocol.sync_update(typed("kept")[0]))
    registry.leave(room, connection)
    await asyncio.wait_for(registry._unloading[document.pk], timeout=5)
    assert document.pk not in registry.rooms and room.closed
    assert await stored_text(document) == "kept"


async def test_an_open_room_compacts_the_log_from_its_live_doc(
    document: Document, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.COLLAB_COMPACT_EVERY = 3  # type: ignore[attr-defined]

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("an open room compacts without rebuilding the doc from the log")

    monkeypatch.setattr(persistence, "build_doc", no_rebuild)
    connection = FakeConnection(user_id=document.owner_id)
    room = await registry.join(document.pk, connection)
    for update in typed("a", "b", "c", "d"):
        await room.receive(connection, protocol.sync_update(update))
    await room.journal.drained()
    assert room._compact_task is not None
    await asyncio.wait_for(room._compact_task, timeout=5)
    await database_sync_to_async(document.refresh_from_db)()
    assert document.state_seq == room.sequences.watermark >= 3
    assert await stored_rows(document) == 4 - document.state_seq
    assert await stored_text(document) == "abcd"


async def test_a_returning_client_cancels_the_unload(document: Document) -> None:
    first = FakeConnection()
    room = await registry.join(document.pk, first)
    registry.leave(room, first)
    assert await registry.join(document.pk, FakeConnection()) is room
    assert document.pk not in registry._unloading


async def test_a_failed_database_write_keeps_the_edit_and_retries(
    document: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = 2
    real_append = journal_module.aappend_updates

    async def flaky_append(document_id, rows):  # type: ignore[no-untyped-def]
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("database unavailable")
        return await real_append(document_id, rows)

    monkeypatch.setattr(journal_module, "aappend_updates", flaky_append)
    writer, reader = FakeConnection(user_id=document.owner_id), FakeConnection()
    room = await registry.join(document.pk, writer)
    await registry.join(document.pk, reader)
    await room.receive(writer, protocol.sync_update(typed("durable")[0]))
    # Live collaborators see the edit at once, whatever the database does.
    await reader.until(lambda: reader.text == "durable")
    assert writer.saved == 0
    await writer.until(lambda: writer.saved == 1)
    assert failures == 0
    assert await stored_text(document) == "durable"


async def test_a_readers_writes_are_dropped_counted_and_answered_once(document: Document) -> None:
    viewer, editor = FakeConnection(can_write=False), FakeConnection()
    room = await registry.join(document.pk, viewer)
    await registry.join(document.pk, editor)
    update = typed("nope")[0]
    await room.receive(viewer, protocol.sync_update(update))
    await room.receive(viewer, protocol.sync_step2(update))
    # A reader's step 1 is still answered.
    await room.receive(viewer, protocol.sync_step1(b"\x00"))
    await room.journal.drained()
    assert room.stats["dropped_writes"] == 2 and viewer.denied == 1
    assert editor.text == "" and viewer.text == ""
    assert await stored_rows(document) == 0
    assert viewer.frames[-1][:2] == b"\x00\x01"


async def test_a_room_heals_rows_it_never_heard_of(document: Document) -> None:
    connection = FakeConnection()
    room = await registry.join(document.pk, connection)
    # Another process committed this, and its group messages were lost.
    await database_sync_to_async(append_updates)(document.pk, [(typed("healed")[0], None)])
    await registry.tick()
    await registry.tick()
    await connection.until(lambda: connection.text == "healed")
    assert room.sequences.watermark == 1 and room.stats["healed"] == 1


async def test_an_update_whose_process_died_is_adopted(
    document: Document, settings: object
) -> None:
    connection = FakeConnection()
    room = await registry.join(document.pk, connection)
    update = typed("orphan")[0]
    room._on_group_message(
        {"type": "room.update", "origin": "dead", "n": 1, "update": update, "author": None}
    )
    await connection.until(lambda: connection.text == "orphan")
    room.sequences._unconfirmed["dead"][1].received_at -= 60  # its marker never came
    room.adopt_stale()
    await room.journal.drained()
    assert room.stats["adopted"] == 1
    assert await stored_text(document) == "orphan"


class HalfApplyingDoc:
    """Stands in for a pycrdt Doc whose apply fails part way, as pycrdt's does on some
    decodable but invalid updates (RuntimeError) or with a pyo3 PanicException."""

    def __init__(self, real: object, error: BaseException) -> None:
        self._real = real
        self._error = error

    def apply_update(self, update: bytes) -> None:
        raise self._error

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


class FakePanic(BaseException):
    pass


@pytest.mark.parametrize("error", [RuntimeError("block parent…"), FakePanic("unwrap on Err")])
async def test_a_failed_apply_closes_nothing_else_and_rebuilds_the_room(
    document: Document, error: BaseException
) -> None:
    writer, other = FakeConnection(), FakeConnection()
    room = await registry.join(document.pk, writer)
    await registry.join(document.pk, other)
    first, second = typed("safe", " more")
    await room.receive(writer, protocol.sync_update(first))
    room.doc = HalfApplyingDoc(room.doc, error)  # type: ignore[assignment]
    seen = len(writer.frames)
    with pytest.raises(InvalidUpdate):
        await room.receive(writer, protocol.sync_update(second))
    assert room.rebuilding is not None
    await asyncio.wait_for(room.rebuilding, timeout=5)
    assert str(room.doc.get("t", type=Text)) == "safe"
    await other.until(lambda: other.text == "safe")
    assert room.stats["rebuilds"] == 1
    # A step 1 to every client: they push back whatever the rebuilt doc lacks.
    assert any(frame[:2] == b"\x00\x00" for frame in writer.frames[seen:])


async def test_awareness_is_owned_spread_and_removed(document: Document) -> None:
    ada, bob = FakeConnection(), FakeConnection()
    room = await registry.join(document.pk, ada)
    await registry.join(document.pk, bob)
    own, spoof = Entry(11, 1, '{"user":{"name":"Ada"}}'), Entry(22, 5, '{"user":{"name":"X"}}')
    await room.receive(ada, protocol.awareness(encode_entries([own, spoof])))
    shown = with_user(own, ada.presence_user)  # the server sets who it is
    assert shown is not None and bob.presence == {11: shown.state}
    # Ada now speaks for 11 only; an entry for 22 is ignored whoever sends it first.
    await room.receive(ada, protocol.awareness(encode_entries([spoof])))
    assert 22 not in bob.presence
    late = FakeConnection()
    await registry.join(document.pk, late)
    assert late.presence == {11: shown.state}
    registry.leave(room, ada)
    assert bob.presence == {} and late.presence == {}


async def test_document_deleted_while_open_closes_its_sockets(document: Document) -> None:
    connection = FakeConnection()
    room = await registry.join(document.pk, connection)
    await database_sync_to_async(document.delete)()
    await room.receive(connection, protocol.sync_update(typed("lost cause")[0]))
    await connection.until(lambda: connection.closed_with is not None)
    assert connection.closed_with == CloseCode.DOCUMENT_GONE


@pytest.fixture(params=["memory", "redis"])
async def two_processes(
    request: pytest.FixtureRequest, document: Document
) -> AsyncIterator[tuple[Room, Room]]:
    """Two rooms of one document with separate layers: they stand for two server
    processes (sharing one in-memory layer, or each with its own Redis connection)."""
    if request.param == "redis":
        layers = [RedisPubSubChannelLayer(hosts=[settings.REDIS_URL]) for _ in range(2)]
    else:
        shared = InMemoryChannelLayer()
        layers = [shared, shared]
    room_a, room_b = Room(document.pk, layers[0]), Room(document.pk, layers[1])
    try:
        yield room_a, room_b
    finally:
        await room_a.stop()
        await room_b.stop()
        if request.param == "redis":
            for layer in layers:
                await layer.flush()


async def test_two_processes_share_edits_and_presence_but_store_once(
    document: Document, two_processes: tuple[Room, Room]
) -> None:
    room_a, room_b = two_processes
    await room_a.start()
    await room_b.start()
    a, b = FakeConnection(user_id=document.owner_id), FakeConnection()
    room_a.add(a)
    room_b.add(b)
    await room_a.receive(a, protocol.sync_update(typed("across", client_id=5)[0]))
    await b.until(lambda: b.text == "across")
    await room_b.receive(b, protocol.sync_update(typed("back", client_id=6)[0]))
    await a.until(lambda: "back" in a.text)
    await room_b.receive(b, protocol.awareness(encode_entries([Entry(6, 1, "{}")])))
    await a.until(lambda: 6 in a.presence)
    room_b.remove(b)
    await a.until(lambda: 6 not in a.presence)
    await room_a.journal.drained()
    await room_b.journal.drained()
    # Each update is stored once, by the process its client is connected to.
    assert await stored_rows(document) == 2
    # Commit markers ride along with later messages: flush them, then send presence
    # both ways; it arrives after them (a group delivers one sender's messages in
    # order), so by then each room has taken the other's marker.
    for room in (room_a, room_b):
        assert room._link is not None
        await room._link.flush()
    c = FakeConnection()
    room_b.add(c)
    await room_a.receive(a, protocol.awareness(encode_entries([Entry(5, 1, "{}")])))
    await c.until(lambda: 5 in c.presence)
    await room_b.receive(c, protocol.awareness(encode_entries([Entry(7, 1, "{}")])))
    await a.until(lambda: 7 in a.presence)
    assert room_a.sequences.watermark == 2 == room_b.sequences.watermark
    assert room_a.stats["healed"] == room_b.stats["healed"] == 0


async def test_a_room_alone_publishes_nothing_and_a_newcomer_heals_what_it_missed(
    document: Document, two_processes: tuple[Room, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "PEER_GRACE_SECONDS", 0.0)
    one, two, three = typed("one ", "two ", "three ", client_id=5)
    room_a, room_b = two_processes
    await room_a.start()
    a = FakeConnection(user_id=document.owner_id)
    room_a.add(a)
    await room_a.receive(a, protocol.sync_update(one))
    await room_a.receive(a, protocol.awareness(encode_entries([Entry(5, 1, "{}")])))
    await room_a.journal.drained()
    # The newcomer's load will predate the next commit, which the room, still alone,
    # publishes nothing about: only its reply to the newcomer's hello tells of it.
    stale = await database_sync_to_async(load_document)(document.pk)
    await room_a.receive(a, protocol.sync_update(two))
    await room_a.journal.drained()
    assert room_a.stats["publish_skipped"] >= 5  # two updates and markers, presence

    async def stale_load(document_id: object) -> object:
        return stale

    monkeypatch.setattr(rooms_module, "aload_document", stale_load)
    await room_b.start()
    b = FakeConnection()
    room_b.add(b)
    # The client's sync step 1: what the room has now, the heal's result follows.
    await room_b.receive(b, protocol.sync_step1(b.doc.get_state()))
    await b.until(lambda: b.text == "one two ")
    assert room_b.stats["healed"] == 1
    # Presence published while alone reached nobody; the reply to the hello brings it.
    await b.until(lambda: 5 in b.presence)
    # Each knows the other now: edits travel live both ways.
    assert room_a._link is not None and room_b._link is not None
    assert room_a._link.peers == {room_b.origin} and room_b._link.peers == {room_a.origin}
    await room_a.receive(a, protocol.sync_update(three))
    await b.until(lambda: b.text == "one two three ")
    await room_b.receive(b, protocol.sync_update(typed("back", client_id=6)[0]))
    await a.until(lambda: "back" in a.text)
    # The newcomer leaves: the room is alone again and stops publishing.
    await room_b.stop()
    await a.until(lambda: not room_a._link.peers)  # type: ignore[union-attr]
    skipped = room_a.stats["publish_skipped"]
    await room_a.receive(a, protocol.sync_update(typed("solo", client_id=7)[0]))
    assert room_a.stats["publish_skipped"] == skipped + 1


async def test_a_readers_write_with_nothing_new_is_acknowledged_not_refused(
    document: Document,
) -> None:
    editor, viewer = FakeConnection(), FakeConnection(can_write=False)
    room = await registry.join(document.pk, editor)
    await registry.join(document.pk, viewer)
    update = typed("known")[0]
    await room.receive(editor, protocol.sync_update(update))
    # A viewer's client replies to the server's step 1 with what it has: nothing new.
    await room.receive(viewer, protocol.sync_step2(update))
    await room.receive(viewer, protocol.sync_step2(protocol.EMPTY_UPDATE))
    await viewer.until(lambda: viewer.saved == 2)
    assert viewer.denied == 0 and room.stats["dropped_writes"] == 0


async def test_updates_of_one_loop_turn_go_out_as_one_merged_frame_per_socket(
    document: Document,
) -> None:
    ada, bob, reader = FakeConnection(), FakeConnection(), FakeConnection()
    room = await registry.join(document.pk, ada)
    await registry.join(document.pk, bob)
    await registry.join(document.pk, reader)
    seen = {c: len(c.frames) for c in (ada, bob, reader)}

    def update_frames(connection: FakeConnection) -> list[bytes]:
        return [f for f in connection.frames[seen[connection] :] if f[:2] == b"\x00\x02"]

    # Both writers' frames are handled before the loop turn ends, as when their sockets
    # are read in the same turn under load.
    for update in typed("a", "b", client_id=5):
        await room.receive(ada, protocol.sync_update(update))
    for update in typed("x", client_id=6, name="u"):
        await room.receive(bob, protocol.sync_update(update))
    assert update_frames(reader) == []  # nothing is sent before the turn ends
    await reader.until(lambda: len(update_frames(reader)) == 1)
    assert reader.text == "ab" and str(reader.doc.get("u", type=Text)) == "x"
    # Each writer gets the other's updates, merged, and never its own back.
    await ada.until(lambda: str(ada.doc.get("u", type=Text)) == "x")
    assert len(update_frames(ada)) == 1 and ada.text == ""
    await bob.until(lambda: bob.text == "ab")
    assert len(update_frames(bob)) == 1 and str(bob.doc.get("u", type=Text)) == ""


async def test_one_update_in_a_turn_is_sent_as_it_came(document: Document) -> None:
    ada, bob = FakeConnection(), FakeConnection()
    room = await registry.join(document.pk, ada)
    await registry.join(document.pk, bob)
    (update,) = typed("z", client_id=7)
    await room.receive(ada, protocol.sync_update(update))
    await bob.until(lambda: bob.text == "z")
    assert bob.frames[-1] == protocol.sync_update(update)
    assert protocol.sync_update(update) not in ada.frames


async def test_memory_is_given_back_after_unloads_with_a_collection_once_none_is_open(
    document: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_document = await database_sync_to_async(Document.objects.create)(
        owner_id=document.owner_id, title="Other"
    )
    calls: list[bool] = []
    monkeypatch.setattr(
        registry_module.memory, "give_back", lambda *, collect: calls.append(collect)
    )
    staying, leaving = FakeConnection(), FakeConnection()
    await registry.join(other_document.pk, staying)
    room = await registry.join(document.pk, leaving)
    registry.give_back_memory()  # what earlier tests unloaded
    calls.clear()
    registry.give_back_memory()
    assert calls == []  # nothing unloaded since
    registry.leave(room, leaving)
    await asyncio.wait_for(registry._unloading[document.pk], timeout=5)
    registry.give_back_memory()
    registry.give_back_memory()
    assert calls == [False]  # once per batch of unloads; a room is still open
    other = registry.rooms[other_document.pk]
    registry.leave(other, staying)
    await asyncio.wait_for(registry._unloading[other_document.pk], timeout=5)
    registry.give_back_memory()
    assert calls == [False, True]


def test_give_back_collects_cycles_and_trims() -> None:
    class Node:
        pass

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(100):
            a, b = Node(), Node()
            a.other, b.other = b, a  # type: ignore[attr-defined]
        del a, b
        assert memory.give_back(collect=True) >= 200
        assert memory.give_back(collect=False) == 0
    finally:
        if gc_was_enabled:
            gc.enable()
