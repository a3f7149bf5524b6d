"""
Versions of a document: taking them (automatically when editing pauses or runs long, by
hand with a name, before a restore), attributing them, and restoring one.

A version stores the full merged state (`Doc.get_update()`), the log position it covers,
the users whose log rows fall between the previous version and it, and how many
characters were added and removed. Compaction keeps the log rows newer than the latest
version (see `collab.persistence.compact`), so attribution always finds them.

`collab` is imported inside functions only: `documents` is the base layer.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max, Min, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from documents.diffs import count_changes, diff_blocks
from documents.models import Document, DocumentUpdate, DocumentVersion
from documents.rendering import Block, load_fragment, to_blocks, to_html

logger = logging.getLogger(__name__)

Kind = DocumentVersion.Kind


@dataclass(frozen=True)
class Content:
    """A document's content at a log position, rendered once for hashing and diffing."""

    state: bytes
    seq: int
    content_hash: str
    blocks: list[Block]


def describe(state: bytes, seq: int) -> Content:
    fragment = load_fragment(state)
    html = to_html(fragment)
    return Content(
        state=state,
        seq=seq,
        content_hash=hashlib.sha256(html.encode()).hexdigest(),
        blocks=to_blocks(fragment),
    )


def load_current_doc(document_id: uuid.UUID) -> tuple[Doc, int]:
    """A pycrdt Doc of the document as stored (state and log) and the log position it covers."""
    from collab.persistence import load_document

    stored = load_document(document_id)
    doc: Doc = Doc()
    for update in stored.updates:
        try:
            doc.apply_update(update)
        except (ValueError, RuntimeError):
            # Compaction logs undecodable rows and keeps going; so does history.
            logger.error("A stored update of document %s does not apply", document_id)
    return doc, stored.watermark


def current_content(document_id: uuid.UUID) -> Content:
    doc, seq = load_current_doc(document_id)
    return describe(doc.get_update(), seq)


def version_content(version: DocumentVersion) -> Content:
    return describe(bytes(version.state), version.seq)


def latest_version(document_id: uuid.UUID) -> DocumentVersion | None:
    return DocumentVersion.objects.filter(document_id=document_id).order_by("-seq", "-id").first()


def authors_between(document_id: uuid.UUID, after_seq: int, upto_seq: int) -> list[int]:
    """Ids of the users whose log rows lie in (after_seq, upto_seq]."""
    return list(
        DocumentUpdate.objects.filter(
            document_id=document_id, seq__gt=after_seq, seq__lte=upto_seq, author__isnull=False
        )
        .values_list("author_id", flat=True)
        .distinct()
    )


def take_version(
    document_id: uuid.UUID,
    *,
    kind: str = Kind.AUTO,
    name: str = "",
    user: AbstractBaseUser | None = None,
) -> DocumentVersion | None:
    """Store the document's current content as a version.

    Never two identical versions in a row: when the content equals the latest version's,
    a named request names that version instead, a before-restore request returns it, and
    an automatic one only moves it forward over the log rows that changed nothing.
    Returns the version that now holds the current content, or None when an automatic
    version was not needed (or another process took it at the same moment)."""
    for _ in range(3):
        # The heavy work (rebuild, render, diff) runs before the row lock is taken.
        content = current_content(document_id)
        previous = latest_version(document_id)
        if previous is not None and previous.seq >= content.seq and kind == Kind.AUTO:
            return None
        added = removed = 0
        if previous is None or previous.content_hash != content.content_hash:
            before = version_content(previous).blocks if previous is not None else []
            added, removed = count_changes(diff_blocks(before, content.blocks))
        with transaction.atomic():
            # The document row lock orders this with log appends, compaction and other
            # processes taking a version of the same document.
            Document.objects.select_for_update().filter(pk=document_id).values_list("pk").get()
            if latest_version(document_id) != previous:
                if kind == Kind.AUTO:
                    return None
                continue
            if previous is not None and _same_content(previous, content):
                reused = _reuse(previous, content, kind=kind, name=name)
                return None if kind == Kind.AUTO else reused
            version = DocumentVersion.objects.create(
                document_id=document_id,
                kind=kind,
                name=name,
                state=content.state,
                seq=content.seq,
                created_by=user if user is not None and user.is_authenticated else None,
                chars_added=added,
                chars_removed=removed,
                content_hash=content.content_hash,
            )
            version.authors.set(
                authors_between(document_id, previous.seq if previous else 0, content.seq)
            )
            return version
    raise RuntimeError(f"Could not take a version of document {document_id}: too much contention")


def _same_content(version: DocumentVersion, content: Content) -> bool:
    if version.content_hash:
        return version.content_hash == content.content_hash
    return version_content(version).content_hash == content.content_hash


def _reuse(previous: DocumentVersion, content: Content, *, kind: str, name: str) -> DocumentVersion:
    updates: dict[str, object] = {}
    if content.seq > previous.seq:
        # Rows that changed nothing visible are covered by the existing version, so the
        # periodic check does not find them due again.
        updates["seq"] = content.seq
    if kind == Kind.NAMED and name:
        updates.update(name=name, kind=Kind.NAMED)
    if updates:
        DocumentVersion.objects.filter(pk=previous.pk).update(**updates)
        for field, value in updates.items():
            setattr(previous, field, value)
    return previous


def due_documents(
    document_ids: list[uuid.UUID] | None = None, *, now: datetime | None = None
) -> list[uuid.UUID]:
    """Documents whose unversioned edits paused for `COLLAB_VERSION_IDLE_SECONDS`, or
    began `COLLAB_VERSION_MAX_SECONDS` ago, and edited documents without any version.

    A document's first version is due at once: compaction keeps the log rows newer than
    the latest version for attribution, but folds everything while there is none. One
    query when nothing changed since the latest versions, plus one per document with
    unversioned edits."""
    now = now or timezone.now()
    idle = timedelta(seconds=float(settings.COLLAB_VERSION_IDLE_SECONDS))
    longest = timedelta(seconds=float(settings.COLLAB_VERSION_MAX_SECONDS))
    latest = DocumentVersion.objects.filter(document=OuterRef("pk")).order_by("-seq", "-id")
    documents = (
        Document.objects.filter(deleted_at__isnull=True)
        .annotate(version_seq=Subquery(latest.values("seq")[:1]))
        .filter(last_seq__gt=Coalesce(F("version_seq"), Value(0)))
    )
    if document_ids is not None:
        documents = documents.filter(pk__in=document_ids)
    due = []
    for pk, version_seq, updated_at in documents.values_list("pk", "version_seq", "updated_at"):
        if version_seq is None:
            due.append(pk)
            continue
        span = DocumentUpdate.objects.filter(document_id=pk, seq__gt=version_seq).aggregate(
            first=Min("created_at"), last=Max("created_at")
        )
        # Rows folded before this module existed leave only the document's own clock.
        first, last = span["first"] or updated_at, span["last"] or updated_at
        if now - last >= idle or now - first >= longest:
            due.append(pk)
    return due


def take_due_versions(
    document_ids: list[uuid.UUID] | None = None, *, now: datetime | None = None
) -> int:
    """Take the automatic versions that are due; return how many were stored."""
    taken = 0
    for pk in due_documents(document_ids, now=now):
        try:
            if take_version(pk, kind=Kind.AUTO) is not None:
                taken += 1
        except Document.DoesNotExist:
            continue
    return taken


def copy_children(source: XmlFragment | XmlElement, target: XmlFragment | XmlElement) -> None:
    """Insert copies of `source`'s children at the end of `target`, as new items.
    Iterative, so a deep tree cannot exhaust the stack."""
    pending: list[tuple[XmlFragment | XmlElement, XmlFragment | XmlElement]] = [(source, target)]
    while pending:
        src, dst = pending.pop()
        for child in src.children:
            if isinstance(child, XmlText):
                text = dst.children.append(XmlText())
                for insert, attrs in child.diff():
                    if isinstance(insert, str):
                        text.insert(len(text), insert, attrs or None)
                    else:
                        text.insert_embed(len(text), insert, attrs or None)
            elif isinstance(child, XmlElement):
                element = dst.children.append(XmlElement(child.tag))
                for key, value in child.attributes:
                    element.attributes[key] = value
                pending.append((child, element))


def restore_version(version: DocumentVersion, *, user: AbstractBaseUser) -> DocumentVersion:
    """Make the document's content equal to `version`'s as a new forward change.

    A version of the current content is taken first (so the restore can be undone by
    restoring that one). The change deletes the current blocks and inserts copies of
    the version's blocks; it goes through the update log, and live rooms on every
    process catch up from it once the transaction commits. Returns the version that
    records the restore (or the latest version when the content already matches)."""
    from collab.edits import store_server_update

    document_id = version.document_id
    with transaction.atomic():
        Document.objects.select_for_update().filter(pk=document_id).values_list("pk").get()
        before = take_version(document_id, kind=Kind.BEFORE_RESTORE, user=user)
        target = version_content(version)
        if before is not None and _same_content(before, target):
            return before
        doc, _ = load_current_doc(document_id)
        fragment = doc.get("default", type=XmlFragment)
        state_before = doc.get_state()
        with doc.transaction():
            del fragment.children[0 : len(fragment.children)]
            copy_children(load_fragment(bytes(version.state)), fragment)
        seq = store_server_update(document_id, doc.get_update(state_before), author_id=user.pk)
        content = describe(doc.get_update(), seq)
        previous = version_content(before).blocks if before is not None else []
        added, removed = count_changes(diff_blocks(previous, content.blocks))
        restored = DocumentVersion.objects.create(
            document_id=document_id,
            kind=Kind.RESTORE,
            name="",
            state=content.state,
            seq=seq,
            created_by=user,
            restored_from=version,
            chars_added=added,
            chars_removed=removed,
            content_hash=content.content_hash,
        )
        restored.authors.set([user.pk])
    return restored


def versions_for_history(document: Document, *, named_only: bool = False) -> QuerySet:
    """The document's versions for listings: newest first, without their states."""
    versions = (
        DocumentVersion.objects.filter(document=document)
        .select_related("created_by", "restored_from")
        .defer("state", "restored_from__state")
        .prefetch_related("authors")
        .order_by("-created_at", "-id")
    )
    if named_only:
        versions = versions.exclude(name="")
    return versions
