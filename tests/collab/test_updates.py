from __future__ import annotations

import base64
import random

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText, merge_updates

from yjs.docs import apply, is_covered
from yjs.door import Admitted, CheckedUpdate, admit_update
from yjs.updates import InvalidUpdate, check_update, decode_state_vector


def admitted(update: bytes) -> CheckedUpdate:
    return admit_update(update, max_depth=64)


def recorded_updates() -> list[bytes]:
    """Updates of every content kind a Tiptap/Yjs document produces."""
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("text", type=Text)
    text += "hello wörld 😀"
    text.format(0, 5, {"bold": True, "link": {"href": "https://x.org", "n": [1, {"q": None}]}})
    text.insert_embed(3, {"image": "x.png"})
    del text[0:2]
    meta = doc.get("meta", type=Map)
    meta["k"] = {"nested": [1, 2.5, "s", None, True, {"x": [b"bin"]}], "big": 2**40, "neg": -5}
    meta["sub"] = Map({"a": 1})
    doc.get("list", type=Array).append([1, "two", [3, [4]]])
    fragment = doc.get("default", type=XmlFragment)
    fragment.children.append(XmlElement("heading", {"level": 2}, [XmlText("Title")]))
    return updates + [doc.get_update()]


def nested_any(depth: int) -> bytes:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    doc.get("m", type=Map)["deep"] = value
    return updates[0]


def test_real_updates_of_every_content_kind_pass() -> None:
    for update in recorded_updates():
        check_update(update, max_depth=64)


@pytest.mark.parametrize(
    "update",
    [
        b"",
        base64.b64decode("garbagedoc=="),  # yjs#479: 280 MB in pycrdt before it fails
        b"\xff\xff\xff\xff\x0f\x00",  # 2^32 clients declared in six bytes
        b"\x01\x01\x01\x00\x1f",  # unknown content kind
        b"\x00\x00\x00",  # trailing byte
    ],
)
def test_malformed_updates_are_refused_before_pycrdt(update: bytes) -> None:
    with pytest.raises(InvalidUpdate):
        check_update(update, max_depth=64)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    check_update(nested_any(100), max_depth=128)
    with pytest.raises(InvalidUpdate, match="nested too deeply"):
        check_update(nested_any(200), max_depth=128)


def test_the_segfaulting_depth_is_refused_quickly() -> None:
    # ~26,000 levels overflow pycrdt's decoder stack and kill the process.
    # The same bytes as nested_any() builds, 30,000 levels deep (pycrdt cannot even
    # build it: its own encoder recurses too).
    update = b"\x01\x01\x01\x00\x28\x01\x01m\x04deep\x01" + b"\x75\x01" * 30_000 + b"\x75\x00\x00"
    check_update(update, max_depth=100_000)  # well-formed apart from its depth
    with pytest.raises(InvalidUpdate, match="nested too deeply"):
        check_update(update, max_depth=256)


def test_deep_json_in_a_format_attribute_is_refused() -> None:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    text += "x"
    text.format(0, 1, {"bold": [[[[[[[[[[1]]]]]]]]]]})
    with pytest.raises(InvalidUpdate):
        check_update(updates[-1], max_depth=5)


def test_mutated_updates_either_pass_or_raise_invalid_update() -> None:
    rng = random.Random(7)
    base = recorded_updates()
    for _ in range(3000):
        update = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(update))
            update[pos] = rng.randrange(256)
        try:
            check_update(bytes(update), max_depth=64)
        except InvalidUpdate:
            continue
        # Whatever passes must be safe to hand to pycrdt: it applies or raises.
        try:
            Doc().apply_update(bytes(update))
        except (ValueError, RuntimeError):
            pass


def test_state_vector_bomb_is_refused() -> None:
    # Five bytes declaring 400 million clients: ~540 MB inside pycrdt.
    bomb = b"\x80\x88\xde\xbe\x01"
    with pytest.raises(InvalidUpdate):
        decode_state_vector(bomb)
    assert decode_state_vector(b"\x01\x05\x03") == {5: 3}


def test_pending_structs_are_not_covered() -> None:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    text += "hello"
    text += " world"
    first, second = map(admitted, updates)
    server = Doc()
    server.apply_update(second)  # its dependency has not arrived: pending
    assert not is_covered(second, server.get_state())
    server.apply_update(first)
    assert is_covered(first, server.get_state())
    assert is_covered(second, server.get_state())


def test_deletion_of_a_pending_item_is_not_covered() -> None:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    text += "hello"
    del text[0:1]
    insert, delete = map(admitted, updates)
    server = Doc()
    server.apply_update(delete)
    assert not is_covered(delete, server.get_state())
    server.apply_update(insert)
    assert is_covered(delete, server.get_state())


def test_the_shape_check_update_returns_agrees_with_is_covered() -> None:
    # Two writers whose updates reach a server in a shuffled order (pending structs and
    # pending deletions), with non-BMP text (UTF-16 lengths), formatting, maps, arrays,
    # XML and merged updates (skips), compared at every step.
    rng = random.Random(7)
    updates: list[bytes] = []
    writers = [Doc(client_id=client_id) for client_id in (11, 22)]
    for writer in writers:
        writer.observe(lambda event: updates.append(event.update))
    for step in range(300):
        writer = writers[step % 2]
        text = writer.get("t", type=Text)
        action = rng.random()
        if action < 0.1:
            # Non-ASCII text (😀 is two UTF-16 units) where nothing is deleted: pycrdt's
            # indices into such text are not what Python's are.
            writer.get("e", type=Text).insert(0, rng.choice(["😀x", "é", "漢字"]))
        elif action < 0.4:
            text.insert(rng.randint(0, len(text)), rng.choice(["a", "bc", "def"]))
        elif action < 0.6 and len(text) > 1:
            start = rng.randrange(len(text) - 1)
            del text[start : start + 1]
        elif action < 0.7 and len(text) > 2:
            text.format(0, 2, {"bold": True})
        elif action < 0.8:
            writer.get("m", type=Map)[f"k{step}"] = [step, {"nested": "value"}]
        elif action < 0.9:
            writer.get("a", type=Array).append(step)
        else:
            writer.get("x", type=XmlFragment).children.append(XmlElement("p", {"n": "1"}))
        # Let the writers see each other's edits now and then (origins across clients).
        if step % 25 == 24:
            for a, b in ((writers[0], writers[1]), (writers[1], writers[0])):
                b.apply_update(a.get_update(b.get_state()))
    updates = [admitted(u) for u in updates if u != b"\x00\x00"]
    merged = [admitted(merge_updates(*updates[i : i + 7])) for i in range(0, len(updates), 7)]
    candidates = updates + merged
    shapes = {u: check_update(u, max_depth=64) for u in candidates}
    rng.shuffle(updates)
    server = Doc()
    probes = rng.sample(candidates, 60)
    for update in updates:
        server.apply_update(update)
        state = server.get_state()
        for probe in probes[:5]:
            assert shapes[probe].covered_by(state) == is_covered(probe, state)
        probes = probes[5:] + probes[:5]
    final = server.get_state()
    verdicts = [(shapes[u].covered_by(final), is_covered(u, final)) for u in candidates]
    assert all(shape == covered for shape, covered in verdicts)
    assert 0 < sum(covered for _, covered in verdicts) < len(verdicts)  # both kinds seen
    # Once everything is integrated (yjs.docs retries what pycrdt left pending),
    # every update is covered.
    pending: list[Admitted] = []
    integrated = Doc()
    for update in updates:
        apply(integrated, update, pending)
    assert pending == []
    assert all(shapes[u].covered_by(integrated.get_state()) for u in candidates)
