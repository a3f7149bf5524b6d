"""Prepare the bench database: a user with a session cookie, fresh documents for the
load scenarios, and the automerge-paper document stored as after real editing.

Run with the project venv and DJANGO_SETTINGS_MODULE/DATABASE_URL pointing at the bench
database. Prints one JSON object (cookie, document ids, storage figures) on stdout.

The automerge-paper trace (Martin Kleppmann, via josephg/editing-traces, CC BY 4.0) is
replayed into pycrdt one edit per transaction; the 259,778 per-edit updates go into the
update log through `append_updates` in batches, the log is compacted, and the last edits
are appended afterwards as single rows, so a cold open reads merged state plus a log
tail, as it would after real editing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import django

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.db import connection  # noqa: E402
from pycrdt import Doc, Text  # noqa: E402

from collab.persistence import append_updates, compact, load_document  # noqa: E402
from documents.models import Document, DocumentUpdate  # noqa: E402

B4_TITLE = "bench: automerge-paper"
TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "automerge-paper.json.gz"


def replay_trace(path: Path) -> tuple[list[bytes], str]:
    """The per-edit V1 updates of the trace and the final text."""
    trace = json.loads(gzip.decompress(path.read_bytes()))
    doc: Doc = Doc()
    text = doc.get("default", type=Text)
    updates: list[bytes] = []
    # One transaction per edit, like a typing user; the observer hands out each update.
    doc.observe(lambda event: updates.append(event.update))
    for txn in trace["txns"]:
        for pos, delete, insert in txn["patches"]:
            with doc.transaction():
                if delete:
                    del text[pos : pos + delete]
                if insert:
                    text.insert(pos, insert)
    return updates, str(text)


def ensure_b4(owner: User, tail: int, batch: int) -> tuple[Document, dict[str, float]]:
    existing = Document.objects.filter(owner=owner, title=B4_TITLE).first()
    if existing is not None and existing.last_seq >= 259_778:
        return existing, {"reused": 1.0}
    if existing is not None:
        existing.delete()
    figures: dict[str, float] = {}
    started = time.perf_counter()
    updates, final = replay_trace(TRACE)
    figures["replay_s"] = time.perf_counter() - started
    figures["edits"] = float(len(updates))
    figures["final_chars"] = float(len(final))
    document = Document.objects.create(owner=owner, title=B4_TITLE)
    head, rest = updates[: len(updates) - tail], updates[len(updates) - tail :]
    started = time.perf_counter()
    for i in range(0, len(head), batch):
        append_updates(document.pk, [(u, owner.pk) for u in head[i : i + batch]])
    figures["append_s"] = time.perf_counter() - started
    started = time.perf_counter()
    compact(document.pk)
    figures["compact_s"] = time.perf_counter() - started
    for update in rest:
        append_updates(document.pk, [(update, owner.pk)])
    document.refresh_from_db()
    return document, figures


def storage(document: Document) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT octet_length(state), pg_column_size(state) FROM documents_document "
            "WHERE id = %s",
            [document.pk],
        )
        state_len, state_disk = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), coalesce(sum(octet_length(data)), 0), "
            "coalesce(sum(pg_column_size(data)), 0) FROM documents_documentupdate "
            "WHERE document_id = %s",
            [document.pk],
        )
        rows, log_len, log_disk = cursor.fetchone()
    return {
        "state_bytes": int(state_len),
        "state_disk_bytes": int(state_disk),
        "log_rows": int(rows),
        "log_bytes": int(log_len),
        "log_disk_bytes": int(log_disk),
    }


def vacuum() -> None:
    """Clear the dead rows that compaction and earlier runs left, as autovacuum does on a
    default PostgreSQL. This machine's server runs with autovacuum off: the update log
    had grown to 623 MB of dead rows for 5,000 live ones, and loading the automerge-paper
    document's 400-row tail walked 259,778 dead index entries (11 ms instead of 1)."""
    with connection.cursor() as cursor:
        for model in (DocumentUpdate, Document):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--b4-file", type=Path, required=True)
    parser.add_argument("--b4-tail", type=int, default=400, help="log rows left after compaction")
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    owner, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": False})
    # Fresh scenario documents each run; the (expensive) automerge-paper one is kept.
    Document.objects.filter(owner=owner).exclude(title=B4_TITLE).delete()
    docs = Document.objects.bulk_create(
        Document(owner=owner, title=f"bench {i}") for i in range(args.docs)
    )
    session = SessionStore()
    session[SESSION_KEY] = str(owner.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = owner.get_session_auth_hash()
    session.create()

    b4, figures = ensure_b4(owner, args.b4_tail, args.batch)
    vacuum()
    # The same content, merged into one update, for the peers' in-memory stores.
    stored = load_document(b4.pk)
    doc: Doc = Doc()
    for update in stored.updates:
        doc.apply_update(update)
    merged = doc.get_update()
    args.b4_file.write_bytes(merged)
    result = {
        "cookie": session.session_key,
        "docs": [str(d.pk) for d in docs],
        "b4": str(b4.pk),
        "b4_setup": figures,
        "b4_storage": storage(b4),
        "b4_merged_v1_bytes": len(merged),
        "b4_log_rows_total": DocumentUpdate.objects.filter(document=b4).count(),
        "b4_chars": len(str(doc.get("default", type=Text))),
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
