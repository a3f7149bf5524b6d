"""Wire compatibility and cross-process behaviour, end to end.

Two uvicorn processes share PostgreSQL and Redis; stock y-websocket clients (Node, see
yjs_client.mjs) connect to each. Nothing here talks to a server except those clients and
the database: the test process writes to the update log directly only to simulate a
process whose channel-layer messages were lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pycrdt import Doc, Text

from collab.persistence import append_updates, load_document
from documents.models import Document, Role
from documents.people import user_colour
from documents.sharing import share_with
from tests.e2e import node_client
from tests.e2e.node_client import NodeClient, NodeClientError, NodeClients
from tests.e2e.servers import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The fixture lives next to the client it manages; bound here so pytest finds it.
node_clients = node_client.node_clients

StartServer = Callable[..., ServerProcess]
TEXT_NAME = "text"  # the Y.Text the Node driver edits


# Helpers


def session_cookie(user: AbstractUser) -> str:
    """A real session (in the shared database) as the Cookie header a browser sends."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def join(client: NodeClient, server: ServerProcess, document: Document, user: AbstractUser) -> int:
    return client.connect(
        server.ws_url,
        str(document.pk),
        cookie=session_cookie(user),
        origin=server.http_url,
    )


def stored_doc(document_id: uuid.UUID) -> Doc:
    """The document as the database holds it (merged state plus log), like a room loads it."""
    doc = Doc()
    for update in load_document(document_id).updates:
        doc.apply_update(update)
    return doc


def stored_text(document_id: uuid.UUID) -> str:
    return str(stored_doc(document_id).get(TEXT_NAME, type=Text))


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def presence_of(states: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one remote awareness entry ({clientID, state}) whose user is `name`."""
    matches = [
        entry for entry in states if (entry.get("state") or {}).get("user", {}).get("name") == name
    ]
    assert len(matches) == 1, f"expected exactly one presence named {name}: {states}"
    return matches[0]


def ann_and_ben(document: Document, alice: AbstractUser, bob: AbstractUser) -> None:
    """Alice shows as Ann, and Bob, an editor, as Ben: the server sets the name others
    see from the account, whatever a client puts in its presence."""
    for user, name in ((alice, "Ann"), (bob, "Ben")):
        user.first_name = name
        user.save(update_fields=["first_name"])
    share_with(document, "bob", Role.EDITOR)


def assert_never_dropped(client: NodeClient) -> None:
    """The provider opened exactly one socket and it never closed."""
    status = client.status()
    assert status["connected"] and status["synced"], status
    assert status["connects"] == 1 and status["disconnects"] == 0, status["events"]


# Tests


def test_node_handshake_is_refused_for_anonymous_wrong_origin_and_stranger(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
) -> None:
    server = start_server("a")
    client = node_clients("refused")
    room = str(document.pk)
    refusals = {
        "anonymous": (None, server.http_url),
        "wrong origin": (session_cookie(alice), "http://evil.example"),
        "no access": (session_cookie(bob), server.http_url),
    }
    for case, (cookie, origin) in refusals.items():
        with pytest.raises(NodeClientError) as refused:
            client.connect(server.ws_url, room, cookie=cookie, origin=origin, timeout=5)
        # 403 at the HTTP upgrade: the socket was never accepted, not closed after accept.
        assert refused.value.reply.get("refusedStatus") == 403, (case, refused.value.reply)
        assert refused.value.reply["connects"] == 0, (case, refused.value.reply["events"])
        client.disconnect()
    # The same driver, with the owner's session and the right Origin, gets in: the
    # refusals above were about credentials, not a broken client.
    client.connect(server.ws_url, room, cookie=session_cookie(alice), origin=server.http_url)
    assert client.text() == ""


def test_edits_presence_abrupt_disconnect_and_late_joiner_across_processes(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
    staff: AbstractUser,
) -> None:
    ann_and_ben(document, alice, bob)
    server_a, server_b = start_server("a"), start_server("b")
    on_a, on_b = node_clients("on-a"), node_clients("on-b")
    id_a = join(on_a, server_a, document, alice)
    id_b = join(on_b, server_b, document, bob)

    # Edits cross A -> B and B -> A.
    on_a.insert("Hello from A. ")
    on_b.wait_text(equals="Hello from A. ")
    on_b.insert("Hi from B.")
    final = "Hello from A. Hi from B."
    on_a.wait_text(equals=final)
    assert on_b.text() == final

    # Presence, with name and colour (the accounts', not the ones the clients claim),
    # crosses both ways.
    on_a.set_presence("Ben", "#e11d48")
    on_b.set_presence("Ann", "#2563eb")
    ann = presence_of(on_b.wait_presence("Ann"), "Ann")
    assert ann["clientID"] == id_a and ann["state"]["user"]["color"] == user_colour(alice)
    ben = presence_of(on_a.wait_presence("Ben"), "Ben")
    assert ben["clientID"] == id_b and ben["state"]["user"]["color"] == user_colour(bob)

    # A late joiner on A gets the whole text in its first sync, and both presences: Ann's
    # from A's own table, Ben's as it came through the channel layer.
    late = node_clients("late")
    join(late, server_a, document, staff)
    assert late.text() == final
    late.wait_presence("Ann")
    late.wait_presence("Ben")

    # A crashed browser (SIGKILL: no close frame, no awareness goodbye) disappears from the
    # other process's client and from the same process's late joiner, well before the
    # 30 s awareness timeout of y-protocols could remove it.
    on_a.kill()
    on_b.wait_presence("Ann", present=False, timeout=5)
    late.wait_presence("Ann", present=False, timeout=5)
    # The survivors keep editing across processes.
    late.insert(" Bye.")
    on_b.wait_text(equals=final + " Bye.")


def test_presence_of_a_crashed_servers_client_expires_on_the_other_process(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
    bob: AbstractUser,
) -> None:
    # A server killed with kill -9 never announces that its clients left. The other
    # process drops their presence once it was not renewed for the presence timeout, and
    # its own clients must hear of it (not keep a ghost until y-protocols' own 30 s).
    # Far above the renewal period below, so that a loaded machine does not expire a
    # live client; still far below y-protocols' 30 s.
    timeout = 2.5
    env = {"COLLAB_AWARENESS_TIMEOUT_SECONDS": str(timeout)}
    ann_and_ben(document, alice, bob)
    server_a, server_b = start_server("a", env=env), start_server("b", env=env)
    on_a, on_b = node_clients("on-a"), node_clients("on-b")
    join(on_a, server_a, document, alice)
    join(on_b, server_b, document, bob)
    on_a.set_presence("Ann", "#e11d48")
    on_a.renew_presence(every=0.25)
    on_b.wait_presence("Ann")
    # While Ann's process lives and she renews, B keeps her well past the timeout (this
    # loop checks that a state holds for a while; it synchronises nothing).
    holds_until = time.monotonic() + timeout + 1.0
    while time.monotonic() < holds_until:
        presence_of(on_b.presence(), "Ann")
        time.sleep(0.1)

    server_a.kill()  # Ann's browser lives on (it keeps trying to reconnect to A)
    on_b.wait_presence("Ann", present=False, timeout=timeout + 5)
    # And B no longer hands the ghost to newcomers.
    late = node_clients("late")
    join(late, server_b, document, bob)
    names = [(e["state"] or {}).get("user", {}).get("name") for e in late.presence()]
    assert "Ann" not in names, late.presence()


def test_both_servers_restarted_gracefully_serve_the_full_document(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
) -> None:
    server_a, server_b = start_server("a"), start_server("b")
    on_a, on_b = node_clients("on-a"), node_clients("on-b")
    join(on_a, server_a, document, alice)
    join(on_b, server_b, document, alice)
    on_a.insert("alpha ")
    on_b.wait_text(equals="alpha ")
    on_b.insert("beta")
    final = "alpha beta"
    on_a.wait_text(equals=final)

    # Stop at once, without waiting for the log: the graceful shutdown must flush.
    server_a.stop()
    server_b.stop()
    assert stored_text(document.pk) == final
    server_a.start()
    server_b.start()

    for server in (server_a, server_b):
        fresh = node_clients(f"fresh-{server.name}")
        join(fresh, server, document, alice)
        assert fresh.text() == final

    # The clients that were open during the restart reconnect on their own (stock
    # provider backoff) and still edit across processes.
    on_a.wait_connected(connects=2, timeout=20)
    on_b.wait_connected(connects=2, timeout=20)
    on_a.insert(" gamma")
    on_b.wait_text(equals=final + " gamma")


def test_killed_server_loses_no_acknowledged_edit(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
) -> None:
    server_a, server_b = start_server("a"), start_server("b")
    on_a, on_b = node_clients("on-a"), node_clients("on-b")
    join(on_a, server_a, document, alice)
    join(on_b, server_b, document, alice)
    on_a.insert("written through A. ")
    on_b.wait_text(equals="written through A. ")
    on_b.insert("written through B.")
    final = "written through A. written through B."
    on_a.wait_text(equals=final)

    # Acknowledged = committed to the log. Then A dies without any chance to flush.
    wait_until(lambda: stored_text(document.pk) == final, timeout=10, what="the edits stored")
    server_a.kill()

    # B's client never noticed anything.
    assert on_b.text() == final
    assert_never_dropped(on_b)

    server_a.start()
    fresh = node_clients("fresh")
    join(fresh, server_a, document, alice)
    assert fresh.text() == final

    # A's old client reconnects to the restarted process and its edits reach B again,
    # so the new room on A is subscribed to the document's group.
    on_a.wait_connected(connects=2, timeout=20)
    on_a.insert(" Back.")
    on_b.wait_text(equals=final + " Back.")
    fresh.wait_text(equals=final + " Back.")


def test_update_committed_without_group_message_is_healed_from_the_log(
    start_server: StartServer,
    node_clients: NodeClients,
    document: Document,
    alice: AbstractUser,
) -> None:
    server_a, server_b = start_server("a"), start_server("b")
    on_a, on_b = node_clients("on-a"), node_clients("on-b")
    join(on_a, server_a, document, alice)
    join(on_b, server_b, document, alice)
    on_a.insert("live. ")
    on_b.wait_text(equals="live. ")
    # Build on exactly what is stored, so the expected text is deterministic.
    wait_until(lambda: stored_text(document.pk) == "live. ", timeout=10, what="the edit stored")

    # "A process committed this, then its channel-layer messages were lost": the row is
    # in the log and nothing at all is published.
    doc = stored_doc(document.pk)
    before = doc.get_state()
    text = doc.get(TEXT_NAME, type=Text)
    text += "healed from the log."
    append_updates(document.pk, [(doc.get_update(before), None)])

    expected = "live. healed from the log."
    # Bounded well above the 0.3 s check interval of tests.settings (healing takes one to
    # two intervals) but far below y-websocket's 30 s silent-socket reconnect.
    on_a.wait_text(equals=expected, timeout=10)
    on_b.wait_text(equals=expected, timeout=10)
    # Healed in place: the stock clients never reconnected (a reconnect would resync and
    # hide a room that does not heal).
    assert_never_dropped(on_a)
    assert_never_dropped(on_b)
    # The heal only read the log: no process stored the row a second time.
    assert Document.objects.get(pk=document.pk).last_seq == 2
