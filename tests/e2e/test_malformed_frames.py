"""
Malformed input against a live server (issue 2): more than a thousand random, truncated
and mutated frames, while a well-behaved client keeps editing the same document.

Two documents, so that "unchanged by the garbage" can be checked exactly:

- Document A is shared by the good client (Alice, typing unique tokens) and an attacker
  (Mallory, an editor, so she may write). Mallory sends A only frames that cannot change a
  document handled per the protocol: frames that are invalid by construction (every
  strict parser must refuse them: truncations, trailing bytes, counts larger than the
  data, unknown types, text, empty and oversized frames, nesting bombs) and non-write
  frames (mutated step 1 and awareness). So the stored text must be exactly Alice's
  tokens, and no other CRDT client may appear in its state vector.
- Document B gets the mutations that may well be *valid* updates (a CRDT cannot tell a
  mutated update from a real one): random byte edits of real updates carrying a marker
  text. There, only the frames the server did not reject may have changed anything: the
  stored document must equal a local replay of exactly the accepted frames, a fresh
  client's view and a witness client's view.

Whether the server accepted or rejected a frame is learnt per frame without timing: after
each attack frame Mallory sends an awareness update with a fresh nonce for her own client
id. The server handles a socket's frames in order and echoes awareness back to its
sender, so either the echo arrives (accepted) or the socket closes first (rejected).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText, write_var_uint

from collab.persistence import load_document
from documents.models import Document, DocumentUpdate, Membership, Role
from tests.e2e.pyclient import (
    AWARENESS,
    QUERY_AWARENESS,
    STEP2,
    SYNC,
    UPDATE,
    Disconnected,
    YClient,
    awareness_frame,
    decode_state_vector,
    encode_awareness,
    frame,
    is_write,
    read_var_bytes,
    read_var_uint,
    sync_step1,
    sync_update,
)
from tests.e2e.servers import ARTIFACTS, ServerProcess
from yjs.updates import InvalidUpdate, check_update

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEED = 20260423
MARKER = "GARBAGE-MARKER"
"""Text that only attack frames carry; the good client never types it."""
GOOD_ID = 1_000_001
WITNESS_ID = 1_000_002
ATTACKER_A_ID = 2_000_001
ATTACKER_A2_ID = 2_000_003
ATTACKER_SLOW_ID = 2_000_004
ATTACKER_B_ID = 2_000_002
DOCUMENTED_REJECTIONS = {4400, 4413, 1009}
"""Bad message, too large (application), message too big (uvicorn's own frame cap)."""
MIB = 1024 * 1024
UVICORN_WS_MAX_SIZE = 16 * MIB
"""uvicorn's default --ws-max-size (the e2e fixture does not set it)."""
FRAME_TIMEOUT = 20.0
"""Longest a single attack frame may take to be accepted or rejected (a hang fails)."""
UNLIMITED_RATES = dict.fromkeys(
    (
        "COLLAB_UPDATES_PER_SECOND",
        "COLLAB_UPDATES_BURST",
        "COLLAB_AWARENESS_PER_SECOND",
        "COLLAB_AWARENESS_BURST",
    ),
    "1000000",
)
"""The per-socket rate limits would close the attacker's sockets with 4429 long before
the parsers saw most frames (rate limiting has tests of its own): lifted here."""
ACK_TIMEOUT = 10.0
"""Longest the good client waits for one of its edits to be committed."""

# Content kinds of a Yjs v1 item (info & 0x1f) and lib0 Any tags used below.
ANY_KIND, JSON_KIND, EMBED_KIND, FORMAT_KIND, TYPE_KIND, DOC_KIND = 8, 2, 5, 6, 7, 9
ANY_ARRAY, ANY_OBJECT, ANY_STRING = 0x75, 0x76, 0x77


@dataclass(frozen=True)
class Attack:
    category: str
    frame: bytes | str
    must_reject: bool
    """Invalid by construction: a server that accepts it is wrong."""
    expect_code: int | None = None


@dataclass
class Outcome:
    attack: Attack
    code: int | None
    """The close code, or None when the server accepted the frame."""
    seconds: float


@dataclass
class Plan:
    shared: list[Attack] = field(default_factory=list)
    """For document A, where the good client types: nothing here may change content."""
    mutations: list[Attack] = field(default_factory=list)
    """For document B: frames that may be valid writes."""
    slow: list[Attack] = field(default_factory=list)
    """For document A, on a socket of their own: frames that take long to refuse."""

    def add(self, attack: Attack) -> None:
        # A frame that a protocol-following server could apply goes to B unless it is
        # invalid by construction.
        if attack.must_reject or isinstance(attack.frame, str) or not is_write(attack.frame):
            self.shared.append(attack)
        else:
            self.mutations.append(attack)


# Building bytes


def uint(value: int) -> bytes:
    return write_var_uint(value)


def vstr(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return uint(len(data)) + data


def one_item_update(kind: int, content: bytes, *, root: str | bytes = "arr") -> bytes:
    """A Yjs v1 update holding one item of `kind` at the top of the root type `root`:
    one client block, one struct, no origins (so the parent is named), empty delete set."""
    client = 3_000_000 + kind
    return (
        (uint(1) + uint(1) + uint(client) + uint(0) + bytes([kind]) + uint(1) + vstr(root))
        + content
        + uint(0)
    )


def nested_any(depth: int, *, objects: bool = False, mixed: bool = False) -> bytes:
    """lib0 Any content: `depth` nested arrays (or objects) around the marker string."""
    levels = bytearray()
    for level in range(depth):
        as_object = objects or (mixed and level % 2 == 1)
        levels += bytes([ANY_OBJECT]) + uint(1) + vstr("k") if as_object else bytes([ANY_ARRAY, 1])
    return bytes(levels) + bytes([ANY_STRING]) + vstr(MARKER)


def nested_json(depth: int) -> str:
    return (
        '{"a":' * (depth // 2)
        + "[" * (depth - depth // 2)
        + f'"{MARKER}"'
        + "]" * (depth - depth // 2)
        + "}" * (depth // 2)
    )


def nesting_updates(depth: int) -> dict[str, bytes]:
    """Updates whose content nests `depth` deep, one per place where Yrs recurses."""
    return {
        "nested Any arrays": one_item_update(ANY_KIND, uint(1) + nested_any(depth)),
        "nested Any objects": one_item_update(ANY_KIND, uint(1) + nested_any(depth, objects=True)),
        "nested Any mixed": one_item_update(ANY_KIND, uint(1) + nested_any(depth, mixed=True)),
        "nested subdoc options": one_item_update(
            DOC_KIND, vstr(str(uuid.UUID(int=depth))) + nested_any(depth, objects=True)
        ),
        "nested embed": one_item_update(EMBED_KIND, vstr(nested_json(depth)), root="text"),
        "nested format attribute": one_item_update(
            FORMAT_KIND, vstr(MARKER) + vstr(nested_json(depth)), root="text"
        ),
    }


def json_content_smuggling(min_depth: int) -> bytes:
    """An update that yjs.updates and Yrs read differently, hiding content nested at
    least `min_depth` deep from the validator.

    Yjs writes legacy JSON content (kind 2) as a count then that many strings; Yrs
    (pycrdt 0.14.13) reads one string more than the count. Here the count is 0, and the
    one string Yrs reads is, to a reader of the Yjs format, the header of a second item:
    an Embed at root "" whose JSON text spans what Yrs then reads as its second item,
    `Any` content nested `depth` deep. The Embed's length must be a varuint that is also
    valid UTF-8 (Yrs checks the string it reads), hence the 3-byte form and the search
    for a depth whose item length fits it."""
    for depth in range(min_depth, min_depth + 20_000):
        hidden = (
            bytes([ANY_KIND])
            + uint(1)
            + vstr("arr")
            + uint(1)
            + bytes([ANY_ARRAY, 1]) * depth
            + bytes([ANY_STRING])
            + vstr(MARKER)
        )
        high, rest = divmod(len(hidden), 16384)
        middle, low = divmod(rest, 128)
        # [0x80|low][0x80|middle][high] is a 2-byte UTF-8 character then an ASCII byte.
        if 66 <= low <= 95 and middle <= 63 and high <= 127:
            break
    else:  # pragma: no cover
        raise AssertionError("no depth gives a UTF-8 compatible length")
    extra_string = uint(1) + vstr("") + bytes([0x80 | low, 0x80 | middle, high])
    assert len(extra_string) == EMBED_KIND  # its length byte is the Embed's info byte
    json_item = bytes([JSON_KIND]) + uint(1) + vstr("arr") + uint(0) + vstr(extra_string)
    return uint(1) + uint(2) + uint(3_100_000) + uint(0) + json_item + hidden + uint(0)


def marker_doc_updates(rng: random.Random, index: int) -> list[bytes]:
    """Real updates from a scratch document that holds the marker: its full state and
    the incremental updates that built it (later ones depend on earlier ones)."""
    doc = Doc(client_id=rng.randrange(10_000_000, 2**31))
    incremental: list[bytes] = []
    subscription = doc.observe(lambda event: incremental.append(event.update))
    text = doc.get("text", type=Text)
    text.insert(0, f"{MARKER}-{index}-")
    if rng.random() < 0.5:
        text.insert(len(text), "bold", attrs={"bold": True})
    if rng.random() < 0.4:
        del text[0:2]
    if rng.random() < 0.3:
        # One key per object: lib0 objects are hash maps in Yrs, and a key order that
        # changes from run to run would make the mutations differ from run to run.
        doc.get("map", type=Map)["k"] = {"list": [1, "x", None, True, 1.5]}
    if rng.random() < 0.3:
        fragment = doc.get("default", type=XmlFragment)
        fragment.children.append(XmlElement("p", {"class": "m"}, [XmlText(MARKER)]))
    doc.unobserve(subscription)
    return [doc.get_update(), *incremental]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random byte edits: replace, flip a bit, insert or delete 1-4 bytes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        operation = rng.randrange(4)
        if operation == 0 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif operation == 1 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif operation == 2:
            at = rng.randrange(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randint(1, 4))
        elif out:
            at = rng.randrange(len(out))
            del out[at : at + rng.randint(1, 4)]
    return bytes(out)


def payload_of(message: bytes) -> bytes:
    """The varbytes payload of a well-formed sync frame."""
    _, pos = read_var_uint(message, 0)
    _, pos = read_var_uint(message, pos)
    return read_var_bytes(message, pos)[0]


def build_plan(rng: random.Random, max_depth: int) -> Plan:
    plan = Plan()
    updates = [u for i in range(60) for u in marker_doc_updates(rng, i)]
    full_states = [marker_doc_updates(rng, 1000 + i)[0] for i in range(20)]
    state_vectors = [_doc_from(u).get_state() for u in full_states]
    writes = [frame(SYNC, rng.choice((STEP2, UPDATE)), u) for u in updates]
    step1s = [sync_step1(sv) for sv in state_vectors]
    presences = [
        awareness_frame(
            [
                (
                    ATTACKER_A_ID,
                    rng.randrange(1, 1000),
                    json.dumps({"user": {"name": "m", "color": "#f0f"}, "cursor": None}),
                )
            ]
        )
        for _ in range(20)
    ]
    valid = writes + step1s + presences

    # Random bytes, half of them behind a real message type so parsers go deeper.
    for _ in range(220):
        size = rng.choice((rng.randint(1, 8), rng.randint(1, 40), rng.randint(1, 300)))
        data = rng.randbytes(size)
        if rng.random() < 0.5:
            data = bytes([rng.choice((SYNC, AWARENESS, QUERY_AWARENESS))]) + data
        plan.add(Attack("random bytes", data, must_reject=False))

    # Truncations: every strict prefix of a well-formed frame, or of the payload inside
    # a re-framed message, stops short of what its own counts promise.
    for _ in range(150):
        base = rng.choice(valid)
        plan.add(Attack("truncated frame", base[: rng.randrange(1, len(base))], must_reject=True))
    for _ in range(60):
        payload = rng.choice(updates)
        cut = payload[: rng.randrange(1, len(payload))]
        plan.add(Attack("truncated update", frame(SYNC, UPDATE, cut), must_reject=True))
    for _ in range(15):
        sv = rng.choice(state_vectors)
        plan.add(Attack("truncated state vector", sync_step1(sv[: len(sv) - 1]), must_reject=True))

    # Trailing bytes after a complete frame, update, state vector or awareness update.
    for _ in range(25):
        extra = rng.randbytes(rng.randint(1, 4))
        plan.add(Attack("trailing bytes after frame", rng.choice(valid) + extra, must_reject=True))
        plan.add(
            Attack(
                "trailing bytes after update",
                sync_update(rng.choice(updates) + extra),
                must_reject=True,
            )
        )
    for _ in range(10):
        extra = rng.randbytes(rng.randint(1, 4))
        plan.add(
            Attack(
                "trailing bytes after state vector",
                sync_step1(rng.choice(state_vectors) + extra),
                must_reject=True,
            )
        )
        presence = payload_of_awareness(rng.choice(presences))
        plan.add(
            Attack(
                "trailing bytes after awareness",
                frame(AWARENESS, presence + extra),
                must_reject=True,
            )
        )

    # Random byte edits of real frames. Non-writes (step 1, awareness) stay in A; any
    # edit that could be a valid write goes to B.
    for _ in range(70):
        plan.add(Attack("mutated step 1", mutate(rng, rng.choice(step1s)), must_reject=False))
        plan.add(Attack("mutated awareness", mutate(rng, rng.choice(presences)), must_reject=False))
    for _ in range(330):
        step = rng.choice((STEP2, UPDATE))
        payload = mutate(rng, rng.choice(updates))
        plan.add(Attack("mutated update", frame(SYNC, step, payload), must_reject=False))
    for _ in range(70):
        plan.add(Attack("mutated write frame", mutate(rng, rng.choice(writes)), must_reject=False))
    # Some untouched marker updates, so that B certainly has accepted writes to compare.
    for update in updates[:8]:
        plan.add(Attack("valid marker update", sync_update(update), must_reject=False))

    # Unknown message types and sync steps (auth and the extensions are server-to-client).
    for kind in (2, 4, 5, 7, 99, 100, 101, 102, 127, 128, 255, 1000, 2**21, 2**35, 2**53 - 1):
        plan.add(Attack("unknown message type", uint(kind), must_reject=True))
        plan.add(Attack("unknown message type", uint(kind) + vstr(b"x" * 3), must_reject=True))
        plan.add(Attack("unknown message type", uint(kind) + rng.randbytes(8), must_reject=True))
    for step in (3, 4, 9, 127, 128, 2**20):
        plan.add(
            Attack("unknown sync step", frame(SYNC, step, rng.choice(updates)), must_reject=True)
        )
    plan.add(Attack("varuint longer than 53 bits", b"\xff" * 9 + b"\x01", must_reject=True))

    # Text frames and empty frames.
    for text in ("", "hello", '{"type":"sync"}', "\x00\x00\x01\x00", "x" * 10_000):
        plan.add(Attack("text frame", text, must_reject=True, expect_code=4400))
    plan.add(Attack("text frame", writes[0].decode("latin-1"), must_reject=True, expect_code=4400))
    for _ in range(5):
        plan.add(Attack("empty frame", b"", must_reject=True, expect_code=4400))

    # Counts that promise far more than the bytes hold: state-vector bombs (a 5-byte
    # step 1 that made yrs allocate ~540 MB), client, struct and delete-set counts.
    for count in (400_000_000, 2**31, 2**32 + 5, 2**53 - 1):
        plan.add(Attack("state vector bomb", sync_step1(uint(count)), must_reject=True))
        plan.add(
            Attack(
                "state vector bomb",
                sync_step1(uint(count) + uint(7) + uint(3)),
                must_reject=True,
            )
        )
        plan.add(Attack("update client-count bomb", sync_update(uint(count)), must_reject=True))
        plan.add(
            Attack(
                "update delete-set bomb",
                sync_update(uint(0) + uint(count) + uint(1)),
                must_reject=True,
            )
        )
        plan.add(
            Attack(
                "awareness count bomb",
                frame(AWARENESS, uint(count) + uint(1) + uint(1) + vstr("{}")),
                must_reject=True,
            )
        )
        struct_bomb = uint(1) + uint(count) + uint(5) + uint(0) + bytes([4]) + uint(1)
        plan.add(Attack("update struct-count bomb", sync_update(struct_bomb), must_reject=True))

    # The "garbagedoc" bytes that loop lib0 forever (yjs#479), everywhere they fit.
    garbage = base64.b64decode("garbagedoc==")
    for message in (
        sync_update(garbage),
        frame(SYNC, STEP2, garbage),
        sync_step1(garbage),
        frame(AWARENESS, garbage),
    ):
        plan.add(Attack("garbagedoc", message, must_reject=True))

    # Items that are malformed by construction: unknown content kinds, type refs, Any
    # tags, and strings that are not UTF-8.
    for kind in (11, 12, 20, 31):
        message = sync_update(one_item_update(kind, uint(1) + vstr("x")))
        plan.add(Attack("unknown content kind", message, must_reject=True))
    for type_ref in (7, 9, 100):
        message = sync_update(one_item_update(TYPE_KIND, uint(type_ref)))
        plan.add(Attack("unknown type ref", message, must_reject=True))
    for tag in (0, 50, 115, 128):
        message = sync_update(one_item_update(ANY_KIND, uint(1) + bytes([tag])))
        plan.add(Attack("unknown Any tag", message, must_reject=True))
    plan.add(
        Attack(
            "invalid utf-8",
            sync_update(
                one_item_update(
                    ANY_KIND, uint(1) + bytes([ANY_STRING]) + vstr("a"), root=b"\xff\xfe"
                )
            ),
            must_reject=True,
        )
    )
    plan.add(
        Attack(
            "invalid utf-8",
            sync_update(one_item_update(4, vstr(b"\xc3\x28" + MARKER.encode()), root="text")),
            must_reject=True,
        )
    )

    # Legacy JSON content: Yjs and Yrs disagree on its encoding, so it can hide
    # content from a validator that reads it the Yjs way.
    for depth in (30_000, 2 * max_depth):
        update = one_item_update(JSON_KIND, uint(1) + vstr(nested_json(depth)))
        plan.add(Attack(f"nested JSON content ({depth})", sync_update(update), must_reject=True))
    for depth in (100_000, 2 * max_depth, 3):
        update = json_content_smuggling(depth)
        plan.add(Attack("JSON content smuggling", sync_update(update), must_reject=True))

    # Nesting: ~30,000 levels of Any segfault pycrdt; 40,000 arrays are above 64 KiB,
    # which the server checks in a worker thread. Also just past the configured limit.
    for depth in (30_000, 2 * max_depth):
        for name, update in nesting_updates(depth).items():
            plan.add(Attack(f"{name} ({depth})", sync_update(update), must_reject=True))
    plan.add(
        Attack(
            "nested Any arrays (40000)",
            frame(SYNC, STEP2, nesting_updates(40_000)["nested Any arrays"]),
            must_reject=True,
        )
    )

    # Oversized frames: above the application's 1 MiB cap, including a perfectly valid
    # update carrying the marker, and one above uvicorn's own 16 MiB frame cap.
    big = Doc(client_id=4_000_000)
    big.get("text", type=Text).insert(0, MARKER * (MIB // len(MARKER) + 10))
    for message in (
        sync_update(big.get_update()),
        sync_step1(b"\x00" * MIB),
        frame(AWARENESS, encode_awareness([(ATTACKER_A_ID, 1, json.dumps({"x": "y" * MIB}))])),
        rng.randbytes(MIB + 1),
    ):
        plan.add(Attack("oversized frame", message, must_reject=True, expect_code=4413))
    huge = b"\x00\x02" + uint(UVICORN_WS_MAX_SIZE) + b"\x00" * UVICORN_WS_MAX_SIZE
    plan.slow.append(Attack("frame above uvicorn's cap", huge, must_reject=True, expect_code=1009))

    rng.shuffle(plan.shared)
    rng.shuffle(plan.mutations)
    return plan


def payload_of_awareness(message: bytes) -> bytes:
    _, pos = read_var_uint(message, 0)
    return read_var_bytes(message, pos)[0]


def _doc_from(*updates: bytes) -> Doc:
    # Only ever called on updates that passed the server's validation, or that this
    # module built from real documents: never on deeply nested content.
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def self_check_generators(max_depth: int) -> None:
    """The nesting bombs differ from valid updates only in their depth: the same
    builders at depth 3 give updates that pycrdt applies. (Legacy JSON content has no
    such twin: Yrs reads it differently from Yjs, see json_content_smuggling.)"""
    shallow = {**nesting_updates(3), "JSON content smuggling": json_content_smuggling(3)}
    for name, update in shallow.items():
        try:
            _doc_from(update)
        except Exception as exc:  # pragma: no cover - a broken generator
            raise AssertionError(f"shallow twin of {name} does not apply: {exc}") from exc


# Running the attack


@dataclass
class Session:
    """What a client needs to open sockets to one server as one user."""

    base_url: str
    origin: str
    cookie: str

    async def open(self, document_id: uuid.UUID, **kwargs: object) -> YClient:
        return await YClient.open(
            f"{self.base_url}/{document_id}",
            cookie=self.cookie,
            origin=self.origin,
            **kwargs,  # type: ignore[arg-type]
        )


async def attack(
    session: Session, document_id: uuid.UUID, client_id: int, attacks: list[Attack]
) -> list[Outcome]:
    """Send every attack frame on a socket of its own lifetime: reconnect after each
    close, and learn each frame's fate from the awareness echo that follows it."""
    nonces = itertools.count()
    outcomes: list[Outcome] = []

    async def probe(client: YClient) -> bool:
        """True when the server answered a fresh awareness nonce, False if it closed."""
        nonce = f"{client_id}-{next(nonces)}"
        try:
            await client.set_presence({"probe": nonce})
            # The echo is the state as the server relays it, with the socket's `user`.
            quoted = json.dumps(nonce)
            await client.until(lambda: quoted in client.awareness.get(client_id, ""), FRAME_TIMEOUT)
        except Disconnected:
            return False
        return True

    async def connect() -> YClient:
        client = await session.open(document_id, client_id=client_id, sync=False)
        # The first awareness entry also fixes the client id this socket speaks for.
        assert await probe(client), f"a fresh socket closed with {client.close_code}"
        return client

    client: YClient | None = None
    try:
        for item in attacks:
            if client is None or client.closed:
                if client is not None:
                    await client.close()
                client = await connect()
            started = time.monotonic()
            try:
                async with asyncio.timeout(FRAME_TIMEOUT):
                    try:
                        await client.send(item.frame)
                        accepted = await probe(client)
                    except Disconnected:
                        accepted = False
                    code = None if accepted else await client.until_closed(FRAME_TIMEOUT)
            except TimeoutError:
                raise AssertionError(
                    f"no answer within {FRAME_TIMEOUT}s to {item.category} "
                    f"({_describe(item.frame)}): the server hangs"
                ) from None
            outcomes.append(Outcome(item, code, time.monotonic() - started))
    finally:
        if client is not None:
            await client.close()
    return outcomes


def _describe(message: bytes | str) -> str:
    if isinstance(message, str):
        return f"text frame of {len(message)} chars"
    return f"{len(message)} bytes, starting {message[:24].hex()}"


@dataclass
class Run:
    outcomes_a: list[Outcome]
    outcomes_b: list[Outcome]
    tokens: list[str]
    ack_latencies: list[float]
    good_text: str
    good_state: dict[int, int]
    good_saw_attacker: bool
    fresh_a_text: str
    fresh_a_state: dict[int, int]
    fresh_b_text: str
    fresh_b_state: dict[int, int]
    witness_b_state: dict[int, int]


async def keep_typing(good: YClient, stop: asyncio.Event) -> tuple[list[str], list[float]]:
    """Type unique tokens until `stop`, each one committed before the next."""
    tokens: list[str] = []
    latencies: list[float] = []
    for index in itertools.count():
        if stop.is_set():
            break
        token = f"<good-{index:05d}>"
        started = time.monotonic()
        good.type_text(token)
        tokens.append(token)
        await good.until_saved(ACK_TIMEOUT)
        latencies.append(time.monotonic() - started)
        # Pacing, not synchronisation: a person types a few tokens a second; this keeps
        # the shared database from being the bottleneck of the attack loops.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return tokens, latencies


async def run_attack(
    alice: Session, mallory: Session, doc_a: uuid.UUID, doc_b: uuid.UUID, plan: Plan
) -> Run:
    good = await alice.open(doc_a, client_id=GOOD_ID, extensions=True)
    witness = await alice.open(doc_b, client_id=WITNESS_ID)
    try:
        await good.until(lambda: good.synced)
        await good.set_presence({"user": {"name": "Alice"}})
        await witness.until(lambda: witness.synced)
        stop = asyncio.Event()

        async def attacks() -> tuple[list[Outcome], list[Outcome]]:
            # Four sockets at once, each with its own awareness client id (a socket
            # speaks only for the first id it announced, and ids are not shared). The
            # frame above uvicorn's cap gets a socket of its own: uvicorn only drops
            # the connection after its close timeout (10 s), as the client is still
            # sending when it gives up on the frame.
            try:
                a1, a2, slow, b = await asyncio.gather(
                    attack(mallory, doc_a, ATTACKER_A_ID, plan.shared[0::2]),
                    attack(mallory, doc_a, ATTACKER_A2_ID, plan.shared[1::2]),
                    attack(mallory, doc_a, ATTACKER_SLOW_ID, plan.slow),
                    attack(mallory, doc_b, ATTACKER_B_ID, plan.mutations),
                )
            finally:
                stop.set()
            return a1 + a2 + slow, b

        # A task group: if the good client is disconnected or stalls, the attack stops
        # at once instead of running to its end.
        async with asyncio.TaskGroup() as group:
            attacking = group.create_task(attacks())
            typing = group.create_task(keep_typing(good, stop))
        outcomes_a, outcomes_b = attacking.result()
        tokens, latencies = typing.result()
        assert good.close_code is None and witness.close_code is None

        fresh_a = await alice.open(doc_a)
        fresh_b = await alice.open(doc_b)
        try:
            await fresh_a.until(lambda: fresh_a.synced)
            await fresh_b.until(lambda: fresh_b.synced)
            # The witness has everything the room broadcast; let the last of it arrive.
            await witness.until(lambda: witness.state == fresh_b.state, 5.0)
            return Run(
                outcomes_a=outcomes_a,
                outcomes_b=outcomes_b,
                tokens=tokens,
                ack_latencies=latencies,
                good_text=str(good.text),
                good_state=good.state,
                good_saw_attacker=any(
                    cid in (ATTACKER_A_ID, ATTACKER_A2_ID) for cid, _ in good.awareness_seen
                ),
                fresh_a_text=str(fresh_a.text),
                fresh_a_state=fresh_a.state,
                fresh_b_text=str(fresh_b.text),
                fresh_b_state=fresh_b.state,
                witness_b_state=witness.state,
            )
        finally:
            await fresh_a.close()
            await fresh_b.close()
    finally:
        await good.close()
        await witness.close()


# Checking


def stored_doc(document_id: uuid.UUID) -> Doc:
    # Every stored update passed the server's validation, so applying it here is safe.
    return _doc_from(*load_document(document_id).updates)


def replay_accepted(outcomes: list[Outcome]) -> Doc:
    """A document built from exactly the write frames the server accepted, in order."""
    doc = Doc()
    for outcome in outcomes:
        message = outcome.attack.frame
        if outcome.code is None and isinstance(message, bytes) and is_write(message):
            doc.apply_update(payload_of(message))
    return doc


def text_of(doc: Doc) -> str:
    return str(doc.get("text", type=Text))


def state_of(doc: Doc) -> dict[int, int]:
    return decode_state_vector(doc.get_state())


def session_for(user: AbstractUser, server: ServerProcess) -> Session:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return Session(base_url=server.ws_url, origin=server.http_url, cookie=cookie)


def answers_http(server: ServerProcess) -> bool:
    # No proxy from the environment for a loopback address.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.http_url}/accounts/login/", timeout=5) as response:
        return bool(response.status == 200)


def writes(outcome: Outcome) -> bool:
    return isinstance(outcome.attack.frame, bytes) and is_write(outcome.attack.frame)


def histogram(outcomes: list[Outcome]) -> Counter[str]:
    return Counter("accepted" if o.code is None else str(o.code) for o in outcomes)


def by_category(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        key = "accepted" if outcome.code is None else str(outcome.code)
        table.setdefault(outcome.attack.category, Counter())[key] += 1
    return {category: dict(counts) for category, counts in sorted(table.items())}


def test_malformed_frames_leave_server_and_document_intact(start_server) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    max_depth = int(settings.COLLAB_MAX_NESTING_DEPTH)
    self_check_generators(max_depth)
    plan = build_plan(random.Random(SEED), max_depth)
    total = len(plan.shared) + len(plan.slow) + len(plan.mutations)
    assert total >= 1000 and len(plan.shared) >= 500 and len(plan.mutations) >= 300

    users = get_user_model().objects
    alice = users.create_user("alice", "alice@example.com", "pw-alice-1")
    mallory = users.create_user("mallory", "mallory@example.com", "pw-mallory-1")
    doc_a = Document.objects.create(owner=alice, title="Shared with an attacker")
    doc_b = Document.objects.create(owner=alice, title="Target of mutations")
    for document in (doc_a, doc_b):
        # The attacker is a collaborator with write access, not a stranger.
        Membership.objects.create(document=document, user=mallory, role=Role.EDITOR)

    server = start_server("malformed", env=UNLIMITED_RATES)
    log_start = server.log_path.stat().st_size
    run = asyncio.run(
        run_attack(
            session_for(alice, server), session_for(mallory, server), doc_a.pk, doc_b.pk, plan
        )
    )
    attack_seconds = time.monotonic() - started
    outcomes = run.outcomes_a + run.outcomes_b
    server_log = server.log_path.read_bytes()[log_start:].decode(errors="replace")
    # Written before any assertion, so that a failing run leaves its numbers behind.
    summary = {
        "seed": SEED,
        "frames": total,
        "frames_document_a": len(plan.shared) + len(plan.slow),
        "frames_document_b": len(plan.mutations),
        "histogram": dict(histogram(outcomes)),
        "histogram_document_a": dict(histogram(run.outcomes_a)),
        "histogram_document_b": dict(histogram(run.outcomes_b)),
        "by_category": by_category(outcomes),
        "good_tokens": len(run.tokens),
        "good_ack_seconds_max": round(max(run.ack_latencies, default=0.0), 3),
        "mean_frame_seconds": round(sum(o.seconds for o in outcomes) / len(outcomes), 4),
        "slowest_frames": [
            (o.attack.category, round(o.seconds, 3))
            for o in sorted(outcomes, key=lambda o: o.seconds)[-3:]
        ],
        "room_rebuilds_logged": server_log.count("rebuilding"),
        "seconds_until_attack_done": round(attack_seconds, 1),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    Path(ARTIFACTS / "malformed-frames.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))

    # The server is still up and serving.
    assert server.process is not None and server.process.poll() is None
    assert answers_http(server)

    # Every rejection used a documented code; every frame that must be refused was.
    codes = {o.code for o in outcomes if o.code is not None}
    assert codes <= DOCUMENTED_REJECTIONS, by_category(outcomes)
    wrongly_accepted = [
        o.attack.category for o in outcomes if o.attack.must_reject and o.code is None
    ]
    assert not wrongly_accepted, wrongly_accepted
    wrong_codes = [
        (o.attack.category, o.code)
        for o in outcomes
        if o.attack.expect_code is not None and o.code != o.attack.expect_code
    ]
    assert not wrong_codes, wrong_codes
    # Nothing that reached document A could write: any accepted frame there is a
    # non-write by construction (see Plan.add).
    assert not [o.attack.category for o in run.outcomes_a if o.code is None and writes(o)]

    # Document A: the good client was never disconnected and kept editing throughout;
    # what is stored is exactly its tokens, from its client id only.
    expected_text = "".join(run.tokens)
    assert len(run.tokens) >= 20, "the good client barely typed during the attack"
    assert run.good_text == expected_text
    assert run.fresh_a_text == expected_text and run.fresh_a_state == run.good_state
    stored_a = stored_doc(doc_a.pk)
    assert text_of(stored_a) == expected_text
    assert state_of(stored_a) == run.good_state
    assert set(run.good_state) == {GOOD_ID}
    assert MARKER not in text_of(stored_a)
    assert not DocumentUpdate.objects.filter(document=doc_a, author=mallory).exists()
    assert run.good_saw_attacker, "awareness from the other socket never reached the good client"

    # Document B: only accepted frames changed it; the room, a fresh client, the witness
    # and the database agree with a replay of exactly those frames.
    replay = replay_accepted(run.outcomes_b)
    assert sum(1 for o in run.outcomes_b if o.code is None and writes(o)) >= 8
    assert run.fresh_b_state == state_of(replay) and run.fresh_b_text == text_of(replay)
    assert run.witness_b_state == state_of(replay)
    deadline = time.monotonic() + 10
    while state_of(stored := stored_doc(doc_b.pk)) != state_of(replay):
        # Commits are asynchronous; the rooms' journals drain within a second or so.
        assert time.monotonic() < deadline, "document B's stored state never matched"
        time.sleep(0.05)
    assert text_of(stored) == text_of(replay)

    # Nothing failed unexpectedly inside the server either.
    assert "Traceback" not in server_log, server_log[server_log.index("Traceback") - 500 :][:3000]


def test_json_content_cannot_smuggle_nesting_past_the_validator(start_server) -> None:  # type: ignore[no-untyped-def]
    """Reproduction of a crash the malformed-input run found: a ~200 KB update whose
    legacy JSON content makes yjs.updates and Yrs disagree on where items start
    passed validation, and the 100,000-level `Any` content it hid from the validator
    killed the server process (SIGSEGV in pycrdt's decoder) for every user."""
    update = json_content_smuggling(100_000)
    alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1")
    document = Document.objects.create(owner=alice, title="Smuggling")
    server = start_server("smuggling")
    session = session_for(alice, server)

    async def send() -> int:
        attacker = await session.open(document.pk, sync=False)
        try:
            await attacker.send(sync_update(update))
            return await attacker.until_closed(FRAME_TIMEOUT)
        finally:
            await attacker.close()

    async def fresh_view() -> str:
        fresh = await session.open(document.pk)
        try:
            await fresh.until(lambda: fresh.synced)
            return str(fresh.text)
        finally:
            await fresh.close()

    code = asyncio.run(send())
    assert server.process is not None
    assert server.process.poll() is None, f"the server died ({server.process.returncode})"
    assert code == 4400
    assert answers_http(server)
    assert asyncio.run(fresh_view()) == ""
    assert load_document(document.pk).updates == []
    # The validator itself now refuses it, whatever the nesting it would hide.
    with pytest.raises(InvalidUpdate):
        check_update(update, max_depth=int(settings.COLLAB_MAX_NESTING_DEPTH))
