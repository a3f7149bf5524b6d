from __future__ import annotations

import pytest
from django.db import connection
from pycrdt import Doc, Text

from collab.persistence import (
    DocumentGone,
    append_updates,
    compact,
    fetch_missing,
    load_document,
    store_state,
)
from documents.models import Document, DocumentUpdate
from yjs.docs import build_doc


def text_of(updates: list[bytes]) -> str:
    doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


def typed(*chunks: str) -> list[bytes]:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    for chunk in chunks:
        text += chunk
    return updates


@pytest.mark.parametrize("vendor", ["postgresql", "any other database"])
def test_sequence_numbers_are_gapless_and_recorded(
    document: Document, vendor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if vendor != "postgresql":
        # The portable ORM path (SQLite under `make run`), run here on PostgreSQL.
        monkeypatch.setattr(connection, "vendor", "sqlite")
    a, b, c = typed("a", "b", "c")
    assert append_updates(document.pk, [(a, document.owner_id), (b, None)]) == (1, 2)
    assert append_updates(document.pk, [(c, None)]) == (3, 3)
    document.refresh_from_db()
    assert document.last_seq == 3
    assert list(DocumentUpdate.objects.values_list("seq", flat=True)) == [1, 2, 3]
    stored = load_document(document.pk)
    assert text_of(stored.updates) == "abc" and stored.watermark == 3
    assert list(DocumentUpdate.objects.values_list("author_id", flat=True)) == [
        document.owner_id,
        None,
        None,
    ]


def test_large_and_binary_rows_are_stored_byte_for_byte(document: Document) -> None:
    # Every byte value, a NUL among them, and a multi-megabyte row (sent in binary).
    rows = [(bytes(range(256)) * 3, None), (b"\x00" + bytes(4 << 20) + b"\xff", None)]
    assert append_updates(document.pk, rows) == (1, 2)
    stored = [
        bytes(data)
        for data in DocumentUpdate.objects.order_by("seq").values_list("data", flat=True)
    ]
    assert stored == [data for data, _ in rows]


def test_appending_to_a_deleted_document_says_so(document: Document) -> None:
    document_id = document.pk
    document.delete()
    with pytest.raises(DocumentGone):
        append_updates(document_id, [(typed("x")[0], None)])


def test_compaction_folds_covered_rows_and_keeps_pending_ones(document: Document) -> None:
    hello, world, bang = typed("hello", " world", "!")
    # " world" arrives before "hello" (its dependency): it is pending until then.
    append_updates(document.pk, [(world, None)])
    result = compact(document.pk)
    assert (result.folded, result.kept) == (0, 1)
    assert text_of(load_document(document.pk).updates) == ""
    append_updates(document.pk, [(hello, None), (bang, None)])
    result = compact(document.pk)
    assert (result.folded, result.kept) == (3, 0)
    document.refresh_from_db()
    assert document.state_seq == 3 and not DocumentUpdate.objects.exists()
    assert text_of(load_document(document.pk).updates) == "hello world!"


def test_compaction_keeps_a_row_that_does_not_apply(document: Document) -> None:
    # Compaction trusts build_doc's own check: a row it skipped is not "covered".
    hello, world = typed("hello", " world")
    append_updates(document.pk, [(hello, None), (b"\x01\xff\xff", None), (world, None)])
    result = compact(document.pk)
    assert (result.folded, result.kept) == (2, 1)
    assert [bytes(data) for data in DocumentUpdate.objects.values_list("data", flat=True)] == [
        b"\x01\xff\xff"
    ]
    assert text_of(load_document(document.pk).updates[:1]) == "hello world"


def test_a_live_state_folds_the_rows_it_covers_up_to_its_watermark(document: Document) -> None:
    hello, world, bang = typed("hello", " world", "!")
    append_updates(document.pk, [(hello, None), (world, None), (bang, None), (b"\x01\xff", None)])
    live = Doc()  # an open room's doc, which has not got "!" yet
    live.apply_update(hello)
    live.apply_update(world)
    result = store_state(document.pk, live.get_update(), live.get_state(), 2)
    assert (result.folded, result.kept) == (2, 0)
    document.refresh_from_db()
    assert document.state_seq == 2
    assert list(DocumentUpdate.objects.order_by("seq").values_list("seq", flat=True)) == [3, 4]
    assert text_of(load_document(document.pk).updates[:2]) == "hello world!"
    # A state that goes no further than the stored one changes nothing.
    assert store_state(document.pk, b"\x00\x00", b"\x00", 2).folded == 0
    document.refresh_from_db()
    assert bytes(document.state) == live.get_update()


def test_a_live_state_keeps_pending_and_undecodable_rows(document: Document) -> None:
    hello, world = typed("hello", " world")
    append_updates(document.pk, [(world, None), (b"\x01\xff", None)])
    live = Doc()
    live.apply_update(world)  # pending: "hello" has not arrived
    result = store_state(document.pk, live.get_update(), live.get_state(), 2)
    assert (result.folded, result.kept) == (0, 2)
    append_updates(document.pk, [(hello, None)])
    doc, _ = build_doc(load_document(document.pk).updates, document.pk)
    assert str(doc.get("t", type=Text)) == "hello world"


def test_a_pending_row_survives_compaction_and_a_restart(document: Document) -> None:
    hello, world = typed("hello", " world")
    append_updates(document.pk, [(world, None)])
    compact(document.pk)
    # A "restarted" server loads state + log, then receives the missing update.
    doc = Doc()
    for update in load_document(document.pk).updates:
        doc.apply_update(update)
    doc.apply_update(hello)
    assert str(doc.get("t", type=Text)) == "hello world"


def test_fetch_missing_includes_the_state_when_compaction_outran_the_reader(
    document: Document,
) -> None:
    a, b, c = typed("a", "b", "c")
    append_updates(document.pk, [(a, None), (b, None)])
    compact(document.pk)
    append_updates(document.pk, [(c, None)])
    missing = fetch_missing(document.pk, after_seq=1)
    assert missing.state_seq == 2
    assert [seq for seq, _ in missing.updates] == [None, 3]
    assert text_of([update for _, update in missing.updates]) == "abc"
    assert [seq for seq, _ in fetch_missing(document.pk, after_seq=2).updates] == [3]


def test_a_loaded_state_is_trusted_and_pending_rows_after_it_are_still_found(
    document: Document,
) -> None:
    hello, world, bang = typed("hello", " world", "!")
    append_updates(document.pk, [(hello, None)])
    compact(document.pk)
    append_updates(document.pk, [(bang, None)])  # its dependency " world" is missing
    stored = load_document(document.pk)
    assert stored.has_state and len(stored.updates) == 2
    trusted, pending = build_doc(stored.updates, document.pk, state_first=True)
    checked, pending_checked = build_doc(stored.updates, document.pk)
    assert pending == pending_checked == [bang]
    assert trusted.get_update() == checked.get_update()
