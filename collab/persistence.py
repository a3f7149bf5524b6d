"""
CRDT bytes in the database: load a document, append to its update log, fetch rows a room
missed, and compact the log into the document's merged state.

Each function is synchronous ORM code with an `a`-prefixed async twin (Django's
sessions naming) that runs it in Django's database thread.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import psycopg
from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from documents.models import Document, DocumentUpdate, DocumentVersion
from yjs.docs import build_doc, is_covered
from yjs.door import Admitted, TrustedUpdate, trusted_stored
from yjs.updates import InvalidUpdate

logger = logging.getLogger(__name__)


class DocumentGone(Exception):
    """The document was deleted while a room had it open."""


@dataclass(frozen=True)
class StoredDocument:
    updates: list[TrustedUpdate]
    """The merged state (if any) followed by every log row, in order."""
    watermark: int
    """Every log row up to this sequence number is contained in `updates`."""
    state_seq: int
    """The log position the merged state covers."""
    has_state: bool = False
    """Whether `updates` starts with the merged state."""


def load_document(document_id: uuid.UUID) -> StoredDocument:
    # Rows first, then the state: a compaction that runs in between only moves rows
    # into the state read afterwards, so nothing falls between the two reads.
    rows = list(
        DocumentUpdate.objects.filter(document_id=document_id)
        .order_by("seq")
        .values_list("seq", "data")
    )
    try:
        state, state_seq = Document.objects.values_list("state", "state_seq").get(pk=document_id)
    except Document.DoesNotExist:
        raise DocumentGone(document_id) from None
    updates = [trusted_stored(state)] if state else []
    updates += [trusted_stored(data) for _, data in rows]
    watermark = max([state_seq, *(seq for seq, _ in rows)])
    return StoredDocument(
        updates=updates, watermark=watermark, state_seq=state_seq, has_state=bool(state)
    )


def append_updates(
    document_id: uuid.UUID, entries: list[tuple[bytes, int | None]]
) -> tuple[int, int]:
    """Append `(update, author_id)` rows; return the first and last sequence numbers.

    The document row is locked while numbers are handed out, so numbers are gapless and
    a visible row implies that every lower number is visible too."""
    if not entries:
        raise ValueError("nothing to append")
    if connection.vendor == "postgresql":
        return _append_updates_postgresql(document_id, entries)
    with transaction.atomic():
        try:
            last_seq = (
                Document.objects.select_for_update()
                .values_list("last_seq", flat=True)
                .get(pk=document_id)
            )
        except Document.DoesNotExist:
            raise DocumentGone(document_id) from None
        first = last_seq + 1
        DocumentUpdate.objects.bulk_create(
            DocumentUpdate(document_id=document_id, seq=first + i, data=update, author_id=author)
            for i, (update, author) in enumerate(entries)
        )
        last = last_seq + len(entries)
        Document.objects.filter(pk=document_id).update(last_seq=last, updated_at=timezone.now())
    return first, last


# One statement, one round trip: the UPDATE takes the document's row lock and hands out
# the numbers, the INSERT writes every row of the batch from two arrays. This is the
# journal's hot path (a quarter of the server's CPU under load went to the three ORM
# statements it replaces, see bench/NOTES.md).
_APPEND_SQL = """
WITH numbered AS (
    UPDATE {documents} SET last_seq = last_seq + %(n)s, updated_at = now()
    WHERE id = %(id)s
    RETURNING last_seq - %(n)s AS base
)
INSERT INTO {updates} (document_id, seq, data, author_id, created_at)
SELECT %(id)s, numbered.base + rows.ord, rows.data, rows.author, now()
FROM numbered, unnest(%(data)b::bytea[], %(authors)s::bigint[])
    WITH ORDINALITY AS rows(data, author, ord)
RETURNING seq
"""


def _append_updates_postgresql(
    document_id: uuid.UUID, entries: list[tuple[bytes, int | None]]
) -> tuple[int, int]:
    sql = _APPEND_SQL.format(
        documents=connection.ops.quote_name(Document._meta.db_table),
        updates=connection.ops.quote_name(DocumentUpdate._meta.db_table),
    )
    params = {
        "id": document_id,
        "n": len(entries),
        "data": [update for update, _ in entries],
        "authors": [author for _, author in entries],
    }
    connection.ensure_connection()
    # Server-side binding, bytea sent in binary: Django's default client-side binding
    # quotes every byte into the SQL text in Python, which took 0.58 s of GIL for one
    # 7 MB paste while every socket of the process waited (bench/NOTES.md).
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        seqs = [seq for (seq,) in cursor.fetchall()]
    if not seqs:
        raise DocumentGone(document_id)
    return min(seqs), max(seqs)


@dataclass(frozen=True)
class Missing:
    updates: list[tuple[int | None, TrustedUpdate]]
    """Log rows after the asked position; first the merged state (seq None) when
    compaction folded rows past that position into it."""
    state_seq: int


def fetch_missing(document_id: uuid.UUID, after_seq: int) -> Missing:
    """What the log holds beyond `after_seq`, for a room that missed messages."""
    rows = [
        (seq, trusted_stored(data))
        for seq, data in DocumentUpdate.objects.filter(document_id=document_id, seq__gt=after_seq)
        .order_by("seq")
        .values_list("seq", "data")
    ]
    try:
        state_seq = Document.objects.values_list("state_seq", flat=True).get(pk=document_id)
    except Document.DoesNotExist:
        raise DocumentGone(document_id) from None
    updates: list[tuple[int | None, TrustedUpdate]] = []
    if state_seq > after_seq:
        state = Document.objects.values_list("state", flat=True).get(pk=document_id)
        updates.append((None, trusted_stored(state)))
        # Rows kept back by compaction (pending structs) sit below state_seq.
        updates += [
            (seq, trusted_stored(data))
            for seq, data in DocumentUpdate.objects.filter(
                document_id=document_id, seq__lte=after_seq
            ).values_list("seq", "data")
        ]
    return Missing(updates=updates + rows, state_seq=state_seq)


def last_seqs(document_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    return dict(Document.objects.filter(pk__in=document_ids).values_list("pk", "last_seq"))


@dataclass(frozen=True)
class Compaction:
    folded: int
    kept: int
    state_bytes: int


def compact(document_id: uuid.UUID) -> Compaction:
    """Fold the log into the document's merged state under a row lock, rebuilding the
    state from the database (tests, tools; open rooms use `store_state`).

    Rows are deleted only when everything they hold is integrated in the new state;
    rows with pending structs (their dependencies have not arrived) stay in the log,
    because `Doc.get_update()` leaves pending structs out."""
    with transaction.atomic():
        document = _locked(document_id, "state", "state_seq")
        rows = _rows(document_id)
        if not rows:
            return Compaction(folded=0, kept=0, state_bytes=len(document.state or b""))
        stored: list[Admitted] = [trusted_stored(document.state)] if document.state else []
        datas = [trusted_stored(data) for _, _, data in rows]
        skipped: list[Admitted] = []
        doc, pending = build_doc(
            stored + datas, document_id, state_first=bool(stored), skipped=skipped
        )
        # build_doc has just checked every row against the new state: a row it neither
        # skipped nor left pending is covered (no second check).
        uncovered = {id(update) for update in pending + skipped}
        covered = {
            row_id
            for (row_id, _, _), data in zip(rows, datas, strict=True)
            if id(data) not in uncovered
        }
        return _fold(
            document_id, rows, covered, doc.get_update(), max(document.state_seq, rows[-1][1])
        )


def store_state(
    document_id: uuid.UUID, state: bytes, state_vector: bytes, upto_seq: int
) -> Compaction:
    """Compaction for an open room: `state` is its doc's `get_update()`, which holds every
    log row up to `upto_seq` (its watermark) and maybe more (edits not committed yet: a
    crash then leaves them in the state without their row, harmless to a CRDT; their
    clients, never told "saved", send them again). Rebuilding the state from the database
    instead applied the whole state in one pycrdt call holding the GIL: 30 ms for a
    580 KB document, twice a second per document at 10,000 edits/s, where the room's
    `get_update()` takes 1.2 ms.

    Rows up to `upto_seq` that `state_vector` covers are deleted; rows with pending
    structs stay. Nothing is stored when the state already goes as far."""
    with transaction.atomic():
        document = _locked(document_id, "state_seq")
        if document.state_seq >= upto_seq:
            return Compaction(folded=0, kept=0, state_bytes=len(state))
        rows = _rows(document_id, upto_seq)
        covered = {row_id for row_id, _, data in rows if _covered(data, state_vector)}
        return _fold(document_id, rows, covered, state, upto_seq)


def _covered(data: bytes | memoryview, state_vector: bytes) -> bool:
    try:
        return is_covered(trusted_stored(data), state_vector)
    except (InvalidUpdate, ValueError):
        return False  # a row that never applied (logged when it was loaded) stays


def _locked(document_id: uuid.UUID, *fields: str) -> Document:
    try:
        return Document.objects.select_for_update().only(*fields).get(pk=document_id)
    except Document.DoesNotExist:
        raise DocumentGone(document_id) from None


def _rows(document_id: uuid.UUID, upto_seq: int | None = None) -> list[tuple[int, int, bytes]]:
    rows = DocumentUpdate.objects.filter(document_id=document_id)
    if upto_seq is not None:
        rows = rows.filter(seq__lte=upto_seq)
    return list(rows.order_by("seq").values_list("id", "seq", "data"))


def _fold(
    document_id: uuid.UUID,
    rows: list[tuple[int, int, bytes]],
    covered: set[int],
    state: bytes,
    state_seq: int,
) -> Compaction:
    """Store `state` as holding every row up to `state_seq`, and delete the `covered`
    rows the history no longer needs. (In the caller's transaction, under the row lock.)"""
    # Once a document has versions, rows newer than the latest one stay too: the next
    # version names their authors (documents.history takes a document's first version
    # at the first check after its first edit). state_seq still moves past them;
    # reloading a row that the state already holds changes nothing.
    versioned = DocumentVersion.objects.filter(document_id=document_id).aggregate(seq=Max("seq"))[
        "seq"
    ]
    folded = [
        row_id
        for row_id, seq, _ in rows
        if row_id in covered and (versioned is None or seq <= versioned)
    ]
    DocumentUpdate.objects.filter(pk__in=folded).delete()
    Document.objects.filter(pk=document_id).update(state=state, state_seq=state_seq)
    return Compaction(folded=len(folded), kept=len(rows) - len(folded), state_bytes=len(state))


aload_document = database_sync_to_async(load_document)
aappend_updates = database_sync_to_async(append_updates)
afetch_missing = database_sync_to_async(fetch_missing)
alast_seqs = database_sync_to_async(last_seqs)
astore_state = database_sync_to_async(store_state)
