"""
The malformed-frame run for every role (issue 12, item 1): the owner, an editor, a
viewer, and people who came in by share links (a viewer and an editor, taking turns)
each send a thousand frames that are invalid by construction to a real uvicorn server
process, on the document another user keeps editing meanwhile.

Every such frame must close its socket with 4400 (4413 when it is over the frame size
limit), whoever sent it: a viewer's write passes the same door as an editor's (it used to
reach pycrdt unchecked on the read-only path, where 40,000 nested arrays killed the
process). At the end the server is the same process (same pid, still running), serves a
fresh client, and the other user's edits are exactly what it typed.

Each bad frame ends its socket, so each gets a socket of its own: many at a time. Right
after the bad frame a client sends a valid sync step 1, whose answer (a sync step 2,
which the server sends a new socket for no other reason) would show that the bad frame
was accepted, at once and without waiting for a timeout.

The builders of hostile bytes are those of test_malformed_frames.py (issue 2's run,
which mixes in frames that may be valid and checks what they changed).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from documents.models import Document, DocumentUpdate, Membership, Role
from documents.sharing import create_link, join_via_link
from tests.e2e.pyclient import (
    AWARENESS,
    QUERY_AWARENESS,
    STEP2,
    SYNC,
    UPDATE,
    awareness_frame,
    encode_awareness,
    frame,
    sync_step1,
    sync_update,
)
from tests.e2e.servers import ARTIFACTS, ServerProcess
from tests.e2e.test_malformed_frames import (
    ANY_ARRAY,
    ANY_KIND,
    ANY_STRING,
    JSON_KIND,
    MARKER,
    TYPE_KIND,
    Session,
    answers_http,
    json_content_smuggling,
    keep_typing,
    marker_doc_updates,
    nested_json,
    nesting_updates,
    one_item_update,
    session_for,
    state_of,
    stored_doc,
    text_of,
    uint,
    vstr,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEED = 20260512
FRAMES_PER_ROLE = 1_000
MAX_DEPTH = 64
"""The server's COLLAB_MAX_NESTING_DEPTH here: low, so that 100 levels are too deep too."""
MAX_FRAME_BYTES = 256 * 1024
"""The server's COLLAB_MAX_MESSAGE_BYTES here: above the 40,000-level updates (80-160 KB),
and oversized frames stay cheap to send."""
DEPTHS = (MAX_DEPTH + 1, 100, 1_000, 40_000)
PARALLEL_SOCKETS = 24
FRAME_TIMEOUT = 20.0
GOOD_ID = 1_000_001
BAD_MESSAGE, TOO_LARGE = 4400, 4413
SERVER_ENV = {
    "COLLAB_MAX_NESTING_DEPTH": str(MAX_DEPTH),
    "COLLAB_MAX_MESSAGE_BYTES": str(MAX_FRAME_BYTES),
    # Thousands of sockets from one user, many at a time: not what the cap is about.
    "COLLAB_MAX_SOCKETS_PER_USER": "0",
}
UNSAFE_IDS = (2**53, 2**53 + 1, 2**53 + 12_345, 2**56 - 1, 2**56, 2**63, 2**64 - 1)
"""Client ids a JavaScript peer cannot hold exactly (2^53 - 1 is the largest it can)."""


@dataclass(frozen=True)
class BadFrame:
    category: str
    frame: bytes | str
    expect: int = BAD_MESSAGE


# Building frames that are invalid by construction


def string_item(client_id: int, origin: int | None = None) -> bytes:
    """An update of one "x" by `client_id`: at the root "text", or after (`origin`, 0)."""
    head = uint(1) + uint(1) + uint(client_id) + uint(0)
    if origin is None:
        return head + b"\x04" + uint(1) + vstr("text") + vstr("x") + uint(0)
    return head + b"\x84" + uint(origin) + uint(0) + vstr("x") + uint(0)


def deleting(client_id: int) -> bytes:
    """An update that deletes `client_id`'s first character."""
    return uint(0) + uint(1) + uint(client_id) + uint(1) + uint(0) + uint(1)


def unsafe_id_frames(rng: random.Random) -> list[BadFrame]:
    frames = []
    for client_id in UNSAFE_IDS:
        sync = rng.choice((UPDATE, STEP2))
        frames += [
            BadFrame("client id > 2^53 (struct)", frame(SYNC, sync, string_item(client_id))),
            BadFrame("client id > 2^53 (origin)", frame(SYNC, sync, string_item(7, client_id))),
            BadFrame("client id > 2^53 (delete set)", frame(SYNC, sync, deleting(client_id))),
            BadFrame(
                "client id > 2^53 (state vector)",
                sync_step1(uint(1) + uint(client_id) + uint(rng.randrange(100))),
            ),
            BadFrame(
                "client id > 2^53 (awareness)",
                awareness_frame([(client_id, 1, json.dumps({"user": {"name": "m"}}))]),
            ),
        ]
    return frames


@functools.cache
def nesting_frames() -> list[BadFrame]:
    frames = []
    for depth in DEPTHS:
        for name, update in nesting_updates(depth).items():
            for step in (UPDATE, STEP2):
                frames.append(BadFrame(f"{name} ({depth})", frame(SYNC, step, update)))
        legacy = one_item_update(JSON_KIND, uint(1) + vstr(nested_json(depth)))
        frames.append(BadFrame("legacy JSON content", sync_update(legacy)))
        frames.append(
            BadFrame("JSON content smuggling", sync_update(json_content_smuggling(depth)))
        )
    return frames


def count_bombs(rng: random.Random) -> list[BadFrame]:
    frames = []
    for count in (400_000_000, 2**31, 2**32 + 5, 2**53 - 1, rng.randrange(10**6, 10**12)):
        any_bomb = one_item_update(ANY_KIND, uint(count) + bytes([ANY_STRING]) + vstr("x"))
        array_bomb = one_item_update(ANY_KIND, uint(1) + bytes([ANY_ARRAY]) + uint(count))
        string_bomb = one_item_update(4, uint(count) + b"xyz", root="text")
        frames += [
            BadFrame("state vector count", sync_step1(uint(count) + uint(7) + uint(3))),
            BadFrame("update client count", sync_update(uint(count))),
            BadFrame("update struct count", sync_update(uint(1) + uint(count) + uint(5) + uint(0))),
            BadFrame("delete set count", frame(SYNC, STEP2, uint(0) + uint(count) + uint(1))),
            BadFrame("delete range count", sync_update(uint(0) + uint(1) + uint(3) + uint(count))),
            BadFrame("Any value count", sync_update(any_bomb)),
            BadFrame("Any array length", sync_update(array_bomb)),
            BadFrame("string length", sync_update(string_bomb)),
            BadFrame(
                "awareness count",
                frame(AWARENESS, uint(count) + uint(1) + uint(1) + vstr("{}")),
            ),
            BadFrame("payload length", uint(SYNC) + uint(UPDATE) + uint(count) + b"\x00\x00"),
        ]
    return frames


def garbage_frames(rng: random.Random) -> list[BadFrame]:
    frames = [
        BadFrame("text frame", "hello"),
        BadFrame("text frame", '{"type":"sync"}'),
        BadFrame("empty frame", b""),
        # Bytes that loop lib0 forever (yjs#479).
        BadFrame("garbagedoc", sync_update(base64.b64decode("garbagedoc=="))),
        BadFrame("garbagedoc", frame(SYNC, STEP2, base64.b64decode("garbagedoc=="))),
        BadFrame("varuint above 2^53 - 1", b"\xff" * 7 + b"\x7f"),
        BadFrame("varuint above 2^53 - 1", b"\xff" * 9 + b"\x01"),
    ]
    for kind in (2, 4, 5, 99, 100, 101, 127, 128, 2**21, 2**35):
        frames.append(BadFrame("unknown message type", uint(kind) + rng.randbytes(8)))
    for step in (3, 4, 9, 127, 128):
        frames.append(BadFrame("unknown sync step", frame(SYNC, step, rng.randbytes(4))))
    for kind in (11, 12, 20, 31):
        frames.append(BadFrame("unknown content kind", sync_update(one_item_update(kind, b""))))
    for type_ref in (7, 9, 100):
        update = one_item_update(TYPE_KIND, uint(type_ref))
        frames.append(BadFrame("unknown type ref", sync_update(update)))
    for tag in (0, 50, 115, 128):
        update = one_item_update(ANY_KIND, uint(1) + bytes([tag]))
        frames.append(BadFrame("unknown Any tag", sync_update(update)))
    frames.append(
        BadFrame("invalid utf-8", sync_update(one_item_update(4, vstr(b"\xc3\x28"), root="text")))
    )
    for state in ("[1]", '"x"', "7", "{", '{"a":NaN}', "[" * 5_000, "\xff"):
        payload = uint(1) + uint(5) + uint(1) + vstr(state.encode("latin-1"))
        frames.append(BadFrame("awareness state not a JSON object", frame(AWARENESS, payload)))
    for oversize in (
        sync_update(b"\x00" * MAX_FRAME_BYTES),
        sync_step1(b"\x00" * MAX_FRAME_BYTES),
        frame(AWARENESS, encode_awareness([(5, 1, json.dumps({"x": "y" * MAX_FRAME_BYTES}))])),
        rng.randbytes(MAX_FRAME_BYTES + 1),
    ):
        frames.append(BadFrame("oversized frame", oversize, TOO_LARGE))
    return frames


def valid_frames(rng: random.Random) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Well-formed updates, state vectors and awareness updates, to cut and extend."""
    updates = [u for i in range(12) for u in marker_doc_updates(rng, i)]
    state_vectors = []
    for index in range(10):
        doc = Doc()
        # Built here from a real document, never nested deep.
        doc.apply_update(marker_doc_updates(rng, 100 + index)[0])
        state_vectors.append(doc.get_state())
    presences = [
        encode_awareness([(rng.randrange(1, 2**32), rng.randrange(1, 99), json.dumps({"c": i}))])
        for i in range(10)
    ]
    return updates, state_vectors, presences


def frames_for_role(rng: random.Random) -> list[BadFrame]:
    frames = nesting_frames() + count_bombs(rng) + unsafe_id_frames(rng) + garbage_frames(rng)
    updates, state_vectors, presences = valid_frames(rng)
    wholes = (
        [frame(SYNC, rng.choice((UPDATE, STEP2)), u) for u in updates]
        + [sync_step1(sv) for sv in state_vectors]
        + [frame(AWARENESS, p) for p in presences]
    )
    makers: list[Callable[[], BadFrame]] = [
        # Every strict prefix of a well-formed frame stops short of what its counts promise.
        lambda: BadFrame("truncated frame", (w := rng.choice(wholes))[: rng.randrange(1, len(w))]),
        lambda: BadFrame(
            "truncated update",
            frame(
                SYNC,
                rng.choice((UPDATE, STEP2)),
                (u := rng.choice(updates))[: rng.randrange(1, len(u))],
            ),
        ),
        lambda: BadFrame(
            "truncated state vector",
            sync_step1((sv := rng.choice(state_vectors))[: rng.randrange(1, len(sv))]),
        ),
        lambda: BadFrame(
            "truncated awareness",
            frame(AWARENESS, (p := rng.choice(presences))[: rng.randrange(1, len(p))]),
        ),
        lambda: BadFrame("trailing bytes after frame", rng.choice(wholes) + rng.randbytes(3)),
        lambda: BadFrame(
            "trailing bytes after update",
            frame(SYNC, rng.choice((UPDATE, STEP2)), rng.choice(updates) + rng.randbytes(2)),
        ),
        lambda: BadFrame(
            "trailing bytes after state vector",
            sync_step1(rng.choice(state_vectors) + rng.randbytes(2)),
        ),
        lambda: BadFrame(
            "trailing bytes after awareness",
            frame(AWARENESS, rng.choice(presences) + rng.randbytes(2)),
        ),
        lambda: BadFrame("unknown message type", uint(rng.randrange(4, 2**20)) + rng.randbytes(6)),
        lambda: BadFrame(
            "query awareness with a payload", uint(QUERY_AWARENESS) + rng.randbytes(4)
        ),
        lambda: BadFrame(
            "client id > 2^53 (struct)",
            frame(SYNC, UPDATE, string_item(rng.randrange(2**53, 2**56))),
        ),
    ]
    while len(frames) < FRAMES_PER_ROLE:
        frames.append(rng.choice(makers)())
    rng.shuffle(frames)
    return frames


# Running


@dataclass
class Result:
    role: str
    category: str
    expect: int
    code: int | None
    """The close code; None when the server answered the step 1 after the bad frame."""
    failure: str | None = None
    """Why no socket could be opened (a server that died refuses connections)."""

    @property
    def outcome(self) -> str:
        return self.failure or str(self.code)


PROBE = sync_step1(b"\x00")


async def send_one(session: Session, document_id: uuid.UUID, bad: BadFrame, role: str) -> Result:
    """One socket: the bad frame, then a valid step 1; how the server answered."""
    code: int | None = None
    try:
        async with connect(
            f"{session.base_url}/{document_id}",
            origin=session.origin,  # type: ignore[arg-type]
            additional_headers={"Cookie": session.cookie},
            compression=None,
            max_size=None,
            proxy=None,
            ping_interval=None,
            open_timeout=FRAME_TIMEOUT,
            close_timeout=2,
        ) as ws:
            try:
                await ws.send(bad.frame)
                await ws.send(PROBE)
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes) and message[:2] == bytes([SYNC, STEP2]):
                        break  # the step 1 after the bad frame was answered: it was accepted
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
    except (OSError, InvalidHandshake) as exc:
        return Result(role, bad.category, bad.expect, None, f"no socket: {type(exc).__name__}")
    return Result(role, bad.category, bad.expect, code)


async def run_all(
    sessions: dict[str, list[Session]],
    document_id: uuid.UUID,
    plans: dict[str, list[BadFrame]],
) -> list[Result]:
    # A role with several people (links give either role) takes turns among them.
    queue = [
        (role, sessions[role][index % len(sessions[role])], bad)
        for role, frames in plans.items()
        for index, bad in enumerate(frames)
    ]
    random.Random(SEED).shuffle(queue)  # every role at once, not one after the other
    results: list[Result] = []
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(queue):
            role, session, bad = queue[position]
            position += 1
            async with asyncio.timeout(FRAME_TIMEOUT):
                results.append(await send_one(session, document_id, bad, role))

    await asyncio.gather(*(worker() for _ in range(PARALLEL_SOCKETS)))
    return results


async def attack_while_typing(
    good_session: Session,
    sessions: dict[str, list[Session]],
    document_id: uuid.UUID,
    plans: dict[str, list[BadFrame]],
) -> tuple[list[Result], list[str], str]:
    good = await good_session.open(document_id, client_id=GOOD_ID, extensions=True)
    try:
        await good.until(lambda: good.synced)
        await good.set_presence({"user": {"name": "Gina"}})
        stop = asyncio.Event()

        async def attacks() -> list[Result]:
            try:
                return await run_all(sessions, document_id, plans)
            finally:
                stop.set()

        async with asyncio.TaskGroup() as group:
            attacking = group.create_task(attacks())
            typing = group.create_task(keep_typing(good, stop))
        assert good.close_code is None, f"the good client was closed ({good.close_code})"
        return attacking.result(), typing.result()[0], str(good.text)
    finally:
        await good.close()


async def fresh_editor_check(session: Session, document_id: uuid.UUID) -> str:
    """A healthy client after the run: it syncs, writes and is told it is saved."""
    fresh = await session.open(document_id, extensions=True)
    try:
        await fresh.until(lambda: fresh.synced)
        text = str(fresh.text)
        fresh.type_text("after")
        await fresh.until_saved()
        return text
    finally:
        await fresh.close()


def people(document: Document) -> dict[str, list[AbstractUser]]:
    """Who sends the frames, by role, and the good user; "link": a viewer and an editor
    who came in by share links."""
    users = get_user_model().objects
    made = {
        name: users.create_user(name, f"{name}@example.com", f"pw-{name}-1")
        for name in ("edna", "vera", "lena", "lars", "gina")
    }
    Membership.objects.create(document=document, user=made["edna"], role=Role.EDITOR)
    Membership.objects.create(document=document, user=made["vera"], role=Role.VIEWER)
    Membership.objects.create(document=document, user=made["gina"], role=Role.EDITOR)
    for name, role in (("lena", Role.VIEWER), ("lars", Role.EDITOR)):
        link = create_link(document, role, created_by=document.owner)
        assert join_via_link(link.token, made[name]) == document
    return {
        "owner": [document.owner],
        "editor": [made["edna"]],
        "viewer": [made["vera"]],
        "link": [made["lena"], made["lars"]],
        "good": [made["gina"]],
    }


@pytest.mark.timeout(600)
def test_every_role_is_closed_with_4400_by_every_malformed_frame(start_server) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    owner = get_user_model().objects.create_user("olga", "olga@example.com", "pw-olga-1")
    document = Document.objects.create(owner=owner, title="Shared with everyone")
    users = people(document)
    rng = random.Random(SEED)
    roles = [role for role in users if role != "good"]
    plans = {role: frames_for_role(rng) for role in roles}
    assert all(len(frames) >= FRAMES_PER_ROLE for frames in plans.values())

    server: ServerProcess = start_server("malformed-by-role", env=SERVER_ENV)
    assert server.process is not None
    pid = server.process.pid
    log_start = server.log_path.stat().st_size
    sessions = {role: [session_for(user, server) for user in users[role]] for role in roles}
    good_session = session_for(users["good"][0], server)
    results, tokens, good_text = asyncio.run(
        attack_while_typing(good_session, sessions, document.pk, plans)
    )
    seconds = time.monotonic() - started
    server_log = server.log_path.read_bytes()[log_start:].decode(errors="replace")
    wrong = [r for r in results if r.failure is not None or r.code != r.expect]
    summary = {
        "seed": SEED,
        "frames": len(results),
        "seconds": round(seconds, 1),
        "sockets_per_second": round(len(results) / seconds, 1),
        "by_role": {
            role: dict(Counter(r.outcome for r in results if r.role == role)) for role in roles
        },
        "wrong": Counter(f"{r.role}: {r.category} -> {r.outcome}" for r in wrong).most_common(40),
        "good_tokens": len(tokens),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    Path(ARTIFACTS / "malformed-frames-by-role.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))

    # The same server process, still serving.
    assert server.process.pid == pid and server.process.poll() is None, "the server died"
    assert answers_http(server)
    # Every frame from every role closed its socket with the documented code.
    assert len(results) == sum(len(frames) for frames in plans.values())
    assert all(Counter(r.role for r in results)[role] >= FRAMES_PER_ROLE for role in roles)
    assert not wrong, summary["wrong"]
    # The other user's edits are intact: exactly its tokens, from its client only.
    expected = "".join(tokens)
    assert len(tokens) >= 5, "the good client barely typed during the run"
    assert good_text == expected
    stored = stored_doc(document.pk)
    assert text_of(stored) == expected and set(state_of(stored)) == {GOOD_ID}
    assert MARKER not in text_of(stored)
    assert (
        not DocumentUpdate.objects.filter(document=document)
        .exclude(author=users["good"][0])
        .exists()
    )
    # A healthy client at the end: it sees the document, writes and is told it is saved.
    assert asyncio.run(fresh_editor_check(sessions["link"][1], document.pk)) == expected
    assert "after" in text_of(stored_doc(document.pk))
    assert "Traceback" not in server_log, server_log[server_log.index("Traceback") - 500 :][:3000]
