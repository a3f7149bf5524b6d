"""
The one validating door (yjs/door.py): client bytes reach pycrdt only through it.

- Statically: only listed modules import pycrdt, and the pycrdt calls that decode bytes
  sit only in listed functions, each with the reason its bytes are safe.
- Dynamically: every message kind from every role, through the real consumer, with
  pycrdt's decoding entry points wrapped: every byte string they get on the server's
  side is of a door type or was made by the server's own pycrdt.
- The process-killing input (an 80 KB update of 40,000 nested Any arrays, which
  segfaults pycrdt's decoder) goes through a room in a child process, as a viewer's and
  an editor's update and step 2: a regression kills the child, not the test run.
- Client ids above 2^53 - 1 are refused wherever they appear.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, Text, write_var_uint

from collab import protocol
from collab.protocol import CloseCode, ProtocolError
from documents.models import Document, Membership, Role
from documents.sharing import create_link, join_via_link
from tests.collab.conftest import Connect
from tests.collab.yclient import YClient
from yjs import awareness as awareness_module
from yjs.awareness import Entry, encode_entries
from yjs.docs import apply_once, build_doc, is_covered, merge, update_since
from yjs.door import (
    CheckedStateVector,
    CheckedUpdate,
    TrustedUpdate,
    admit_awareness,
    admit_state_vector,
    admit_update,
)
from yjs.updates import InvalidUpdate

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("yjs", "collab", "documents", "editor")
MAX_SAFE_INTEGER = 2**53 - 1


def nested_any_update(depth: int, client: int = 7) -> bytes:
    """One item of `Any` content nested `depth` arrays deep in map "m" under key "deep"
    (the bytes pycrdt's own encoder writes for such a value, which it cannot build at
    this depth: its encoder recurses too)."""
    return (
        b"\x01\x01"
        + write_var_uint(client)
        + b"\x00\x28\x01\x01m\x04deep\x01"
        + b"\x75\x01" * depth
        + b"\x75\x00\x00"
    )


KILLER = nested_any_update(40_000)
"""80 KB that segfault pycrdt's decoder (~26,500 levels overflow an 8 MiB stack)."""


def typed_updates(client_id: int = 5) -> list[bytes]:
    doc = Doc(client_id=client_id)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    doc.get("t", type=Text).insert(0, "hello")
    return updates


# The door's types ----------------------------------------------------------------------


def test_the_door_admits_well_formed_bytes_as_its_own_types() -> None:
    update = typed_updates()[0]
    checked = admit_update(update, max_depth=64)
    assert type(checked) is CheckedUpdate and checked == update
    assert checked.shape.struct_ends == {5: 5}
    state_vector = admit_state_vector(Doc().get_state())
    assert type(state_vector) is CheckedStateVector
    entries = admit_awareness(encode_entries([Entry(3, 1, '{"a":1}')]))
    assert entries == [Entry(3, 1, '{"a":1}')]


def test_the_door_refuses_what_pycrdt_must_not_see() -> None:
    with pytest.raises(InvalidUpdate, match="nested too deeply"):
        admit_update(KILLER, max_depth=256)
    with pytest.raises(InvalidUpdate):
        admit_update(b"\xff\xff\xff\xff\x0f\x00", max_depth=256)  # 2^32 clients
    with pytest.raises(InvalidUpdate):
        admit_state_vector(b"\x80\x88\xde\xbe\x01")  # 400 million clients
    with pytest.raises(ProtocolError):
        admit_awareness(encode_entries([Entry(3, 1, "[" * 100_000)]))
    with pytest.raises(ProtocolError):
        admit_awareness(encode_entries([Entry(3, 1, '{"x":NaN}')]))


def test_pycrdt_functions_refuse_bytes_that_did_not_pass_the_door() -> None:
    update = typed_updates()[0]
    state = Doc().get_state()
    for call in (
        lambda: apply_once(Doc(), update),  # type: ignore[arg-type]
        lambda: is_covered(update, state),  # type: ignore[arg-type]
        lambda: merge([update, update]),  # type: ignore[list-item]
        lambda: update_since(Doc(), state),  # type: ignore[arg-type]
        lambda: build_doc([update], None),  # type: ignore[arg-type, list-item]
        # A subclass is not the door's type either.
        lambda: apply_once(Doc(), type("Forged", (bytes,), {})(update)),
    ):
        with pytest.raises(TypeError, match="door"):
            call()


def update_with_ids(*, struct: int = 9, origin: int | None = None, deleted: int = 9) -> bytes:
    """A string item by client `struct` (with a left origin by `origin`, if given) and a
    delete set deleting from client `deleted`."""
    item = (
        b"\x04\x01\x01t"  # string content, parent: the root named "t"
        if origin is None
        else b"\x84" + write_var_uint(origin) + b"\x00"  # after the item (origin, 0)
    )
    return (
        b"\x01\x01"
        + write_var_uint(struct)
        + b"\x00"
        + item
        + b"\x01x"
        + b"\x01"
        + write_var_uint(deleted)
        + b"\x01\x00\x01"
    )


@pytest.mark.parametrize("client_id", [2**53, 2**53 + 1, 2**56 - 1, 2**56, 2**64 - 1])
def test_client_ids_javascript_cannot_hold_are_refused_everywhere(client_id: int) -> None:
    # Every place a client id is written: struct, origin, delete set, state vector,
    # awareness.
    for update in (
        update_with_ids(struct=client_id),
        update_with_ids(origin=client_id),
        update_with_ids(deleted=client_id),
    ):
        with pytest.raises(InvalidUpdate):
            admit_update(update, max_depth=64)
    with pytest.raises(InvalidUpdate):
        admit_state_vector(b"\x01" + write_var_uint(client_id) + b"\x03")
    with pytest.raises(ProtocolError):
        admit_awareness(encode_entries([Entry(client_id, 1, "{}")]))


def test_the_largest_javascript_safe_client_id_is_accepted() -> None:
    for update in (
        update_with_ids(struct=MAX_SAFE_INTEGER),
        update_with_ids(deleted=MAX_SAFE_INTEGER),
    ):
        checked = admit_update(update, max_depth=64)
        apply_once(Doc(), checked)
    assert admit_state_vector(b"\x01" + write_var_uint(MAX_SAFE_INTEGER) + b"\x03")
    assert admit_awareness(encode_entries([Entry(MAX_SAFE_INTEGER, 1, "{}")]))


# Process-killing input, in a child process ----------------------------------------------

CHILD = """
import asyncio, json, sys
import django
django.setup()
from collab import protocol
from collab.rooms import Room
from yjs.updates import InvalidUpdate
from tests.collab.fakes import FakeConnection
from tests.collab.test_door import KILLER

async def main():
    results = {}
    for role, can_write in (("viewer", False), ("editor", True)):
        for step, make in (("update", protocol.sync_update), ("step2", protocol.sync_step2)):
            room = Room(__import__("uuid").uuid4(), None)
            room.loaded = True
            connection = FakeConnection(can_write=can_write)
            room.add(connection)
            try:
                await room.receive(connection, make(KILLER))
                results[f"{role} {step}"] = "accepted"
            except InvalidUpdate:
                results[f"{role} {step}"] = "InvalidUpdate"
    # The same bytes handed past the door straight to the functions that call pycrdt.
    from pycrdt import Doc
    from yjs.docs import apply_once, is_covered, merge
    for name, call in (
        ("is_covered", lambda: is_covered(KILLER, Doc().get_state())),
        ("apply_once", lambda: apply_once(Doc(), KILLER)),
        ("merge", lambda: merge([KILLER, KILLER])),
    ):
        try:
            call()
            results[name] = "accepted"
        except TypeError:
            results[name] = "TypeError"
    print(json.dumps(results))

asyncio.run(main())
"""


def test_the_update_that_killed_the_worker_is_refused_in_a_child_process() -> None:
    """An 80 KB update of 40,000 nested Any arrays from a viewer used to reach
    `pycrdt.get_update` unchecked (the read-only path's coverage check) and segfault the
    server process. Here a room handles it as a viewer's and an editor's update and step
    2 in a child process: a regression kills the child (exit -11), not the test run."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, f"child exited with {child.returncode}: {child.stderr[-2000:]}"
    results = json.loads(child.stdout.strip().splitlines()[-1])
    assert results == {
        "viewer update": "InvalidUpdate",
        "viewer step2": "InvalidUpdate",
        "editor update": "InvalidUpdate",
        "editor step2": "InvalidUpdate",
        "is_covered": "TypeError",
        "apply_once": "TypeError",
        "merge": "TypeError",
    }


# Static: where pycrdt is imported and where it decodes bytes ----------------------------

PYCRDT_IMPORTS: dict[str, set[str]] = {
    # The pycrdt side of the door: its functions take only door types (runtime guard).
    "yjs.docs": {"Doc", "get_update", "merge_updates"},
    # The awareness table applies entries the door decoded, encoded again by the server.
    "yjs.awareness": {"Awareness", "Doc"},
    # A room holds its Doc; bytes reach it only through yjs.docs.
    "collab.rooms": {"Doc"},
    # Versions and rendering read stored states and what the server's pycrdt made.
    "documents.history": {"Doc", "XmlElement", "XmlFragment", "XmlText"},
    "documents.rendering": {"Doc", "XmlElement", "XmlFragment", "XmlText"},
    # An operator's tool that is a client of a live server, not part of the server.
    "collab.management.commands.collab_check": {"Doc", "Text", "TransactionEvent"},
}

DECODING_METHODS = {"apply_update", "apply_awareness_update", "from_snapshot"}
"""pycrdt methods that decode bytes (`get_update` too, when given a state vector)."""
DECODING_FUNCTIONS = {
    "get_update",
    "merge_updates",
    "get_state",
    "Decoder",
    "read_message",
    "handle_sync_message",
}

DECODING_CALLERS: dict[tuple[str, str], str] = {
    ("yjs.docs", "apply_once"): "door types only (guarded)",
    ("yjs.docs", "is_covered"): "door types only (guarded); the room's own state vector",
    ("yjs.docs", "update_since"): "a CheckedStateVector only (guarded)",
    ("yjs.docs", "merge"): "door types only (guarded)",
    ("yjs.awareness", "AwarenessTable.apply"): "entries the door decoded, re-encoded",
    ("collab.rooms", "Room.heal"): "the room's own state vector (doc.get_state())",
    ("documents.history", "_delete_set_bytes"): "the doc's own state vector",
    ("documents.history", "delta_update"): "a version doc's own state vector",
    ("documents.history", "_rebuild"): "stored version states, made by the server",
    ("documents.history", "_store"): "a delta the server just made",
    ("documents.history", "restore_version"): "the doc's own state vector",
    ("documents.rendering", "load_fragment"): "stored version states and current states",
    ("collab.management.commands.collab_check", "Client._read"): "client side of a check",
}


def app_modules() -> Iterator[tuple[str, ast.Module]]:
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module, ast.parse(path.read_text(), filename=str(path))


def pycrdt_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pycrdt":
                    # `import pycrdt` would hide which names are used: not allowed.
                    names.add(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pycrdt":
            names.update(alias.name for alias in node.names)
            if node.module != "pycrdt":
                names.add(f"from {node.module}")
    return names


class _DecodingCalls(ast.NodeVisitor):
    def __init__(self, tree: ast.Module) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[str, str, int]] = []
        # Names bound to pycrdt's decoders anywhere in the module, under any alias.
        self.aliases = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pycrdt")
            for alias in node.names
        }

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = None
        if isinstance(function, ast.Attribute) and (
            function.attr in DECODING_METHODS
            or (function.attr == "get_update" and (node.args or node.keywords))
        ):
            name = function.attr
        elif (
            isinstance(function, ast.Name)
            and self.aliases.get(function.id, function.id) in DECODING_FUNCTIONS
        ):
            name = function.id
        if name is not None:
            self.found.append((".".join(self.scope), name, node.lineno))
        self.generic_visit(node)


def test_only_listed_modules_import_pycrdt() -> None:
    found = {module: names for module, tree in app_modules() if (names := pycrdt_imports(tree))}
    unexpected = {
        module: sorted(names - PYCRDT_IMPORTS.get(module, set()))
        for module, names in found.items()
        if names - PYCRDT_IMPORTS.get(module, set())
    }
    assert not unexpected, (
        "pycrdt imported outside the list; hand client bytes to yjs.docs (after "
        f"yjs.door) instead, or list the module with its reason: {unexpected}"
    )


def test_pycrdt_decodes_bytes_only_in_listed_functions() -> None:
    calls = []
    for module, tree in app_modules():
        visitor = _DecodingCalls(tree)
        visitor.visit(tree)
        calls += [(module, scope, name, line) for scope, name, line in visitor.found]
    unlisted = [call for call in calls if (call[0], call[1]) not in DECODING_CALLERS]
    assert not unlisted, (
        "bytes decoded by pycrdt outside the listed functions (client bytes must pass "
        f"yjs.door first): {unlisted}"
    )
    # The list holds nothing stale either.
    assert {(module, scope) for module, scope, _, _ in calls} == set(DECODING_CALLERS)


# Dynamic: every message kind, every role, through the real consumer ---------------------


@dataclass
class PycrdtCalls:
    """The byte strings that pycrdt's decoding entry points got from app code."""

    made: list[bytes] = field(default_factory=list)
    """What the server's own pycrdt and awareness encoder produced (kept alive, so that
    identity checks cannot be fooled by a reused id)."""
    seen: list[tuple[str, str, type]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def server_made(self, value: object) -> bool:
        return any(value is made for made in self.made)

    def check(self, entry: str, caller: str, value: object) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            return
        self.seen.append((entry, caller, type(value)))
        if type(value) in (CheckedUpdate, CheckedStateVector, TrustedUpdate):
            return
        if self.server_made(value):
            return
        self.violations.append(
            f"{caller} handed {type(value).__name__} of {len(value)} bytes to {entry}"
        )

    def kinds(self, entry: str) -> set[type]:
        return {kind for name, _, kind in self.seen if name == entry}


def _app_caller() -> str | None:
    """The app module (collab, documents, editor) that called into pycrdt, if any."""
    frame = sys._getframe(2)
    module = frame.f_globals.get("__name__", "")
    if module.split(".")[0] in APP_PACKAGES:
        return f"{module}.{frame.f_code.co_name}"
    return None


@pytest.fixture
def pycrdt_calls(monkeypatch: pytest.MonkeyPatch) -> PycrdtCalls:
    calls = PycrdtCalls()

    def recording(entry: str, original: Callable[..., Any], *, method: bool) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = _app_caller()
            if caller is not None:
                for value in [*args[1 if method else 0 :], *kwargs.values()]:
                    calls.check(entry, caller, value)
            return original(*args, **kwargs)

        return wrapper

    for name in ("apply_update", "get_update"):
        original = getattr(pycrdt.Doc, name)
        monkeypatch.setattr(pycrdt.Doc, name, recording(f"Doc.{name}", original, method=True))
    original = pycrdt.Awareness.apply_awareness_update
    monkeypatch.setattr(
        pycrdt.Awareness,
        "apply_awareness_update",
        recording("Awareness.apply_awareness_update", original, method=True),
    )
    # Module-level decoders: in pycrdt itself (for imports made later, inside a
    # function) and wherever an app module imported them already.
    functions = (pycrdt.get_update, pycrdt.merge_updates, pycrdt.get_state)
    for function in functions:
        monkeypatch.setattr(
            pycrdt, function.__name__, recording(function.__name__, function, method=False)
        )
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] not in APP_PACKAGES or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if any(value is function for function in functions):
                wrapped = recording(value.__name__, value, method=False)
                monkeypatch.setattr(module, attribute, wrapped)

    # What the server makes itself: its docs' state vectors and its awareness encodings.
    get_state = pycrdt.Doc.get_state

    def recorded_state(self: pycrdt.Doc) -> bytes:
        state = get_state(self)
        calls.made.append(state)
        return state

    monkeypatch.setattr(pycrdt.Doc, "get_state", recorded_state)
    encode = awareness_module.encode_entries

    def recorded_encoding(entries: list[Entry]) -> bytes:
        encoded = encode(entries)
        calls.made.append(encoded)
        return encoded

    monkeypatch.setattr(awareness_module, "encode_entries", recorded_encoding)
    return calls


@dataclass
class Person:
    role: str
    user: AbstractUser
    can_write: bool


def people_in_every_role(document: Document, owner: AbstractUser) -> list[Person]:
    """The owner, an editor, a viewer, and a viewer and an editor who came in by links."""
    users = get_user_model().objects
    editor = users.create_user("edna", "edna@example.com", "pw-edna-1")
    viewer = users.create_user("vera", "vera@example.com", "pw-vera-1")
    link_viewer = users.create_user("lena", "lena@example.com", "pw-lena-1")
    link_editor = users.create_user("lars", "lars@example.com", "pw-lars-1")
    Membership.objects.create(document=document, user=editor, role=Role.EDITOR)
    Membership.objects.create(document=document, user=viewer, role=Role.VIEWER)
    for user, role in ((link_viewer, Role.VIEWER), (link_editor, Role.EDITOR)):
        link = create_link(document, role, created_by=owner)
        assert join_via_link(link.token, user) == document
    return [
        Person("owner", owner, True),
        Person("editor", editor, True),
        Person("viewer", viewer, False),
        Person("viewer by link", link_viewer, False),
        Person("editor by link", link_editor, True),
    ]


@pytest.mark.django_db(transaction=True)
async def test_every_message_from_every_role_reaches_pycrdt_only_through_the_door(
    ws_connect: Connect, alice: AbstractUser, document: Document, pycrdt_calls: PycrdtCalls
) -> None:
    people = await database_sync_to_async(people_in_every_role)(document, alice)
    clients: list[tuple[Person, YClient]] = []
    for person in people:
        # Sync step 1 (a state vector) on open, and a step 2 in answer to the server's.
        client = await ws_connect(person.user, document, query="extensions=1")
        clients.append((person, client))
        await client.until(lambda c=client: c.saved == 1)  # its step 2 was acknowledged
    for index, (person, client) in enumerate(clients):
        await client.set_presence(json.dumps({"cursor": index}))
        await client.communicator.send_to(bytes_data=protocol.query_awareness())
        client.text += f"<{person.role}>"  # a sync update
    tokens = {f"<{person.role}>" for person, _ in clients if person.can_write}

    def has_every_write(client: YClient) -> bool:
        return all(token in str(client.text) for token in tokens)

    for person, client in clients:
        if person.can_write:
            await client.until(lambda c=client: has_every_write(c) and c.all_saved())
        else:
            await client.until(lambda c=client: c.denied and has_every_write(c))
            await client.until(lambda c=client: len(c.awareness) == len(clients))
    writer = next(client for person, client in clients if person.can_write)
    assert all(f"<{p.role}>" not in str(writer.text) for p, _ in clients if not p.can_write)
    # A reader's step 2 that holds nothing new is acknowledged: checked for coverage.
    for person, client in clients:
        if not person.can_write:
            await client.communicator.send_to(
                bytes_data=protocol.sync_step2(writer.doc.get_update())
            )
            await client.until(lambda c=client: c.saved == 2)
    # Every kind of frame reached pycrdt: updates to apply (writers'), updates checked
    # for coverage (readers' and writers'), state vectors answered, presence applied.
    assert CheckedUpdate in pycrdt_calls.kinds("Doc.apply_update")
    assert CheckedUpdate in pycrdt_calls.kinds("get_update")
    assert CheckedStateVector in pycrdt_calls.kinds("Doc.get_update")
    assert pycrdt_calls.kinds("Awareness.apply_awareness_update")
    assert not pycrdt_calls.violations, pycrdt_calls.violations


@pytest.mark.django_db(transaction=True)
async def test_a_malformed_frame_from_anyone_closes_it_with_4400(
    ws_connect: Connect, alice: AbstractUser, document: Document, pycrdt_calls: PycrdtCalls
) -> None:
    """Readers' writes pass the door like writers': a malformed one closes the socket
    with 4400 (a reader's used to reach pycrdt unchecked, or close with 4500)."""
    people = await database_sync_to_async(people_in_every_role)(document, alice)
    frames = [
        protocol.sync_update(b"\x01\x01\x07\x00\x28"),  # truncated
        protocol.sync_step2(b"\xff\xff\xff\xff\x0f\x00"),  # 2^32 clients declared
        protocol.sync_update(nested_any_update(1_000)),
        protocol.sync_step2(nested_any_update(300)),
        protocol.sync_update(update_with_ids(struct=2**53)),
        protocol.sync_step2(update_with_ids(deleted=2**55)),
        protocol.sync_step1(b"\x01" + write_var_uint(2**53) + b"\x00"),
        protocol.awareness(encode_entries([Entry(2**54, 1, "{}")])),
        protocol.awareness(encode_entries([Entry(5, 1, "[" * 50_000)])),
    ]
    good = await ws_connect(alice, document, query="extensions=1")
    for person in people:
        for frame in frames:
            client = await ws_connect(person.user, document)
            await client.communicator.send_to(bytes_data=frame)
            code = await client.closed_with()
            assert code == CloseCode.BAD_MESSAGE, (person.role, frame[:12].hex(), code)
    good.text += "still here"
    await good.until(good.all_saved)
    assert not pycrdt_calls.violations, pycrdt_calls.violations


@pytest.mark.django_db(transaction=True)
async def test_server_side_writes_pass_the_same_door(
    document: Document, alice: AbstractUser
) -> None:
    """Changes made on the server (restores, and later imports or API writes) enter
    the log through the same door."""
    from collab.edits import store_server_update

    def store(update: bytes) -> int:
        return store_server_update(document.pk, update, author_id=alice.pk)

    with pytest.raises(InvalidUpdate):
        await database_sync_to_async(store)(KILLER)
    with pytest.raises(InvalidUpdate):
        await database_sync_to_async(store)(update_with_ids(struct=2**53))
    assert await database_sync_to_async(store)(typed_updates()[0]) == 1
