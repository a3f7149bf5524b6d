"""
Versions of a document: taking them (automatically when editing pauses or runs long, by
hand with a name, before a restore), attributing them, storing them compactly, and
restoring one.

A version holds the document's content at a log position, the users whose log rows fall
between the previous version and it, and how many characters were added and removed.
Compaction keeps the log rows newer than the latest version (see
`collab.persistence.compact`), so attribution always finds them.

Storage: a full merged state per version grows with the document (the automerge-paper
trace reaches 340 KB, 197 MB for 1,000 versions; bench/HISTORY.md). So most versions
store only a delta against the version before them: the structs added since its state
vector plus the deletions it did not have yet. Every `MAX_CHAIN` versions, or once the
deltas since the last keyframe outweigh `KEYFRAME_RATIO` of a full state, a version stores
the full state again (a keyframe). Stored bytes are zlib-compressed when that is smaller.
`version_state` / `version_doc` rebuild any version from its keyframe and the deltas
after it; nothing outside this module reads `DocumentVersion.state` directly.

`collab` is imported inside functions only: `documents` is the base layer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from documents.diffs import count_changes, diff_blocks
from documents.models import Document, DocumentUpdate, DocumentVersion
from documents.rendering import Block, collector_paused, events_blocks, events_html, walk
from yjs.codec import (
    decode_delete_set,
    decode_state_vector,
    encode_delete_set,
    subtract_ranges,
)

logger = logging.getLogger(__name__)

Kind = DocumentVersion.Kind

MAX_CHAIN = 100
"""A keyframe at least every this many versions: reading a version applies at most
`MAX_CHAIN - 1` deltas (a few hundred bytes each, microseconds to apply) to its keyframe."""
KEYFRAME_RATIO = 0.5
"""A keyframe as soon as the deltas since the last one would add up to more than this share
of the full state: a read never fetches much more than one and a half full states."""
CACHED_VERSIONS = 4
"""Rebuilt versions kept per thread (see `_remember`)."""
AUTHORS_LISTED = 10
"""Authors named per version in listings; a version edited through a link shared with
thousands of people names ten and says there are others."""


class RestoreError(ValueError):
    """A version cannot be brought back (its content is refused by the update checks)."""


@dataclass(frozen=True)
class Content:
    """A document's content at a log position, walked once for hashing and diffing."""

    doc: Doc
    seq: int
    content_hash: str
    blocks: list[Block]

    @property
    def state(self) -> bytes:
        """The full merged state (`Doc.get_update()`)."""
        return self.doc.get_update()


def describe(doc: Doc, seq: int) -> Content:
    """Hash and blocks of `doc`'s content from a single walk of its tree.

    The hash is SHA-256 of the rendered HTML, as stored in `content_hash`: everything the
    HTML shows counts (a mark, a link target, a checkbox), so a mark-only change is a
    change, and the stored hashes of older versions stay comparable."""
    with collector_paused():
        events = list(walk(doc.get("default", type=XmlFragment)))
        return Content(
            doc=doc,
            seq=seq,
            content_hash=hashlib.sha256(events_html(events).encode()).hexdigest(),
            blocks=events_blocks(events),
        )


def load_current_doc(document_id: uuid.UUID) -> tuple[Doc, int]:
    """A pycrdt Doc of the document as stored (state and log) and the log position it covers."""
    from collab.persistence import load_document
    from yjs.docs import build_doc

    stored = load_document(document_id)
    # build_doc skips (and logs) undecodable rows, and integrates what pycrdt would
    # leave pending, exactly as a room loads the document.
    doc, _ = build_doc(stored.updates, document_id, state_first=stored.has_state)
    return doc, stored.watermark


def current_content(document_id: uuid.UUID) -> Content:
    doc, seq = load_current_doc(document_id)
    return describe(doc, seq)


# Storage: keyframes and deltas ---------------------------------------------------------


def _delete_set_bytes(doc: Doc) -> bytes:
    # An update against the document's own state vector has no structs (its first byte is
    # the zero struct-client count), only the whole delete set.
    return doc.get_update(doc.get_state())[1:]


def _same_crdt_state(a: Doc, b: Doc) -> bool:
    """Both documents hold the same structs and the same deletions (compared decoded:
    yrs encodes clients in hash-map order)."""
    return decode_state_vector(a.get_state()) == decode_state_vector(
        b.get_state()
    ) and decode_delete_set(_delete_set_bytes(a)) == decode_delete_set(_delete_set_bytes(b))


def delta_update(base: Doc, doc: Doc) -> bytes | None:
    """An update that turns `base` into `doc`: the structs `doc` has beyond `base`'s state
    vector, and only the deletions `base` lacks.

    `doc.get_update(state_vector)` alone carries the document's whole delete set, which
    grows with its history: on the automerge-paper trace it is 92% of such an update
    (5.5 KB of a 6 KB mean; bench/HISTORY.md). None when the update does not split as
    expected (then the caller stores a keyframe)."""
    update = doc.get_update(base.get_state())
    deletions = _delete_set_bytes(doc)
    if not update.endswith(deletions):
        return None
    structs = update[: len(update) - len(deletions)]
    current = decode_delete_set(deletions)
    known = decode_delete_set(_delete_set_bytes(base))
    new = {
        client: subtract_ranges(ranges, known.get(client, [])) for client, ranges in current.items()
    }
    return structs + encode_delete_set(new)


def _pack(data: bytes) -> tuple[bytes, bool]:
    packed = zlib.compress(data, 6)
    return (packed, True) if len(packed) < len(data) else (data, False)


def _unpack(data: bytes | memoryview, compressed: bool) -> bytes:
    return zlib.decompress(data) if compressed else bytes(data)


@dataclass
class Rebuilt:
    """A version rebuilt from storage: its document, where it sits in its chain (0 for a
    keyframe) and how many delta bytes (uncompressed) the chain holds up to it."""

    doc: Doc
    depth: int
    chain_bytes: int
    blocks: list[Block] | None = None


@dataclass(frozen=True)
class Stored:
    """The storage fields of a new version."""

    state: bytes
    compressed: bool
    keyframe_id: int | None
    base_id: int | None
    depth: int
    chain_bytes: int


def _rebuild(version: DocumentVersion) -> Rebuilt:
    doc: Doc = Doc()
    if version.keyframe_id is None:
        version = _with_state(version)
        doc.apply_update(_unpack(version.state, version.compressed))
        return Rebuilt(doc, 0, 0)
    # One query for the chain up to the version; ids grow along it, and the base links
    # (not the ids) give the order, so a chain is read right whatever else was stored.
    rows = {
        pk: (base_id, state, compressed)
        for pk, base_id, state, compressed in DocumentVersion.objects.filter(
            Q(pk=version.keyframe_id) | Q(keyframe_id=version.keyframe_id, pk__lte=version.pk)
        ).values_list("pk", "base_id", "state", "compressed")
    }
    path = []
    pk: int | None = version.pk
    while pk is not None:
        base_id, state, compressed = rows[pk]
        path.append(_unpack(state, compressed))
        pk = base_id
    path.reverse()
    for update in path:
        doc.apply_update(update)
    return Rebuilt(doc, len(path) - 1, sum(len(update) for update in path[1:]))


_recent = threading.local()


def _remember(version_id: int, rebuilt: Rebuilt) -> None:
    """Keep the newest versions this thread stored or rebuilt: the next automatic version
    of a document starts from its latest one (as delta base and for the change counts),
    and rebuilding it costs a load and a tree walk. Per thread, because a pycrdt Doc must
    stay on the thread that made it; states of stored versions never change, and ids are
    never reused, so an entry cannot go stale."""
    cache: OrderedDict[int, Rebuilt] = _recent.__dict__.setdefault("versions", OrderedDict())
    cache[version_id] = rebuilt
    cache.move_to_end(version_id)
    while len(cache) > CACHED_VERSIONS:
        cache.popitem(last=False)


def _take_rebuilt(version: DocumentVersion) -> Rebuilt:
    """The version rebuilt, with its blocks; the caller owns the Doc (it may change it)."""
    cache: OrderedDict[int, Rebuilt] = _recent.__dict__.setdefault("versions", OrderedDict())
    rebuilt = cache.pop(version.pk, None)
    if rebuilt is None:
        rebuilt = _rebuild(version)
    if rebuilt.blocks is None:
        rebuilt.blocks = describe(rebuilt.doc, version.seq).blocks
    return rebuilt


def _with_state(version: DocumentVersion) -> DocumentVersion:
    if "state" in version.get_deferred_fields():
        version.refresh_from_db(fields=["state"])
    return version


def version_doc(version: DocumentVersion) -> Doc:
    """A new pycrdt Doc holding the version's content."""
    return _rebuild(version).doc


def version_state(version: DocumentVersion) -> bytes:
    """The version's full merged state, however it is stored."""
    if version.keyframe_id is None and not version.compressed:
        return bytes(_with_state(version).state)
    return version_doc(version).get_update()


def version_fragment(version: DocumentVersion) -> XmlFragment:
    """The version's `default` fragment, for rendering."""
    return version_doc(version).get("default", type=XmlFragment)


def fragment_of(document_id: uuid.UUID, version: DocumentVersion | None) -> XmlFragment:
    """The `default` fragment of the version, or of the document as stored when None."""
    if version is not None:
        return version_fragment(version)
    return load_current_doc(document_id)[0].get("default", type=XmlFragment)


def version_content(version: DocumentVersion) -> Content:
    return describe(version_doc(version), version.seq)


def _store(content: Content, previous: DocumentVersion | None, rebuilt: Rebuilt | None) -> Stored:
    """A delta against the `previous` version (`rebuilt`) when its chain has room and the
    delta checks out, otherwise a keyframe. Consumes `rebuilt.doc` (the delta is applied
    to it)."""
    if previous is not None and rebuilt is not None and rebuilt.depth + 1 < MAX_CHAIN:
        full_size = len(content.state)
        delta = delta_update(rebuilt.doc, content.doc)
        if delta is not None and rebuilt.chain_bytes + len(delta) <= KEYFRAME_RATIO * full_size:
            # Check what readers will do: the base plus the delta is the current state.
            rebuilt.doc.apply_update(delta)
            if _same_crdt_state(rebuilt.doc, content.doc):
                state, compressed = _pack(delta)
                return Stored(
                    state=state,
                    compressed=compressed,
                    keyframe_id=previous.keyframe_id or previous.pk,
                    base_id=previous.pk,
                    depth=rebuilt.depth + 1,
                    chain_bytes=rebuilt.chain_bytes + len(delta),
                )
            logger.warning("A version delta did not rebuild the state; storing a keyframe")
    state, compressed = _pack(content.state)
    return Stored(state, compressed, None, None, 0, 0)


def _create(
    document_id: uuid.UUID, content: Content, stored: Stored, **fields: object
) -> DocumentVersion:
    version = DocumentVersion.objects.create(
        document_id=document_id,
        state=stored.state,
        compressed=stored.compressed,
        keyframe_id=stored.keyframe_id,
        base_id=stored.base_id,
        seq=content.seq,
        content_hash=content.content_hash,
        **fields,
    )
    _remember(version.pk, Rebuilt(content.doc, stored.depth, stored.chain_bytes, content.blocks))
    return version


def latest_version(document_id: uuid.UUID) -> DocumentVersion | None:
    """The document's latest version, without its stored bytes (`version_state` loads them)."""
    return (
        DocumentVersion.objects.filter(document_id=document_id)
        .defer("state")
        .order_by("-seq", "-id")
        .first()
    )


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
        # The heavy work (rebuild, render, diff, delta) runs before the row lock is taken.
        doc, seq = load_current_doc(document_id)
        previous = latest_version(document_id)
        if previous is not None and previous.seq >= seq and kind == Kind.AUTO:
            return None
        content = describe(doc, seq)
        same = previous is not None and _same_content(previous, content)
        stored = None
        added = removed = 0
        if not same:
            # Only a version that will be stored needs its predecessor (delta base, counts).
            rebuilt = _take_rebuilt(previous) if previous is not None else None
            before = rebuilt.blocks if rebuilt is not None and rebuilt.blocks else []
            added, removed = count_changes(diff_blocks(before, content.blocks))
            stored = _store(content, previous, rebuilt)
        with transaction.atomic():
            # The document row lock orders this with log appends, compaction and other
            # processes taking a version of the same document.
            Document.objects.select_for_update().filter(pk=document_id).values_list("pk").get()
            if latest_version(document_id) != previous:
                if kind == Kind.AUTO:
                    return None
                continue
            if previous is not None and stored is None:
                reused = _reuse(previous, content, kind=kind, name=name)
                return None if kind == Kind.AUTO else reused
            assert stored is not None
            version = _create(
                document_id,
                content,
                stored,
                kind=kind,
                name=name,
                created_by=user if user is not None and user.is_authenticated else None,
                chars_added=added,
                chars_removed=removed,
            )
            version.authors.set(
                authors_between(document_id, previous.seq if previous else 0, content.seq)
            )
            return version
    raise RuntimeError(f"Could not take a version of document {document_id}: too much contention")


def _content_hash(version: DocumentVersion) -> str:
    # Versions stored before content hashes existed are rendered once to compare.
    return version.content_hash or version_content(version).content_hash


def _same_content(version: DocumentVersion, content: Content) -> bool:
    return _content_hash(version) == content.content_hash


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
    return take_automatic_versions(due_documents(document_ids, now=now))


def take_automatic_versions(document_ids: list[uuid.UUID]) -> int:
    """Take an automatic version of each document (those deleted meanwhile are
    skipped); return how many were stored."""
    taken = 0
    for pk in document_ids:
        try:
            if take_version(pk, kind=Kind.AUTO) is not None:
                taken += 1
        except Document.DoesNotExist:
            continue
    return taken


def copy_children(source: XmlFragment | XmlElement, target: XmlFragment | XmlElement) -> None:
    """Insert copies of `source`'s children at the end of `target`, as new items.
    Iterative, so a deep tree cannot exhaust the stack.

    Children, and the runs of a text, go in last first at one position: pycrdt finds an
    index by walking the list from its start, so appending each at the end was quadratic
    (restoring a version of 34,000 paragraphs took 21 s)."""
    pending: list[tuple[XmlFragment | XmlElement, XmlFragment | XmlElement]] = [(source, target)]
    while pending:
        src, dst = pending.pop()
        position = len(dst.children)
        for child in reversed(list(src.children)):
            if isinstance(child, XmlText):
                text = dst.children.insert(position, XmlText())
                for insert, attrs in reversed(child.diff()):
                    if isinstance(insert, str):
                        text.insert(0, insert, attrs or None)
                    else:
                        text.insert_embed(0, insert, attrs or None)
            elif isinstance(child, XmlElement):
                element = dst.children.insert(position, XmlElement(child.tag))
                for key, value in child.attributes:
                    element.attributes[key] = value
                pending.append((child, element))


def restore_version(version: DocumentVersion, *, user: AbstractBaseUser) -> DocumentVersion:
    """Make the document's content equal to `version`'s as a new forward change.

    A version of the current content is taken first (so the restore can be undone by
    restoring that one). The change deletes the current blocks and inserts copies of
    the version's blocks; it goes through the update log, and live rooms on every
    process catch up from it once the transaction commits. Returns the version that
    records the restore (or the latest version when the content already matches).
    Raises RestoreError, with nothing changed, when the update checks refuse the copy
    (a version nested deeper than live edits may be)."""
    from collab.edits import store_server_update
    from yjs.updates import InvalidUpdate

    document_id = version.document_id
    with transaction.atomic():
        Document.objects.select_for_update().filter(pk=document_id).values_list("pk").get()
        before = take_version(document_id, kind=Kind.BEFORE_RESTORE, user=user)
        if before is not None and _content_hash(before) == _content_hash(version):
            return before
        doc, _ = load_current_doc(document_id)
        fragment = doc.get("default", type=XmlFragment)
        state_before = doc.get_state()
        with doc.transaction():
            del fragment.children[0 : len(fragment.children)]
            copy_children(version_fragment(version), fragment)
        try:
            seq = store_server_update(document_id, doc.get_update(state_before), author_id=user.pk)
        except InvalidUpdate as exc:
            # Leaves the atomic block by raising: the before-restore version goes too.
            raise RestoreError(f"This version cannot be restored: {exc}.") from exc
        content = describe(doc, seq)
        rebuilt = _take_rebuilt(before) if before is not None else None
        previous = rebuilt.blocks if rebuilt is not None and rebuilt.blocks else []
        added, removed = count_changes(diff_blocks(previous, content.blocks))
        restored = _create(
            document_id,
            content,
            _store(content, before, rebuilt),
            kind=Kind.RESTORE,
            name="",
            created_by=user,
            restored_from=version,
            chars_added=added,
            chars_removed=removed,
        )
        restored.authors.set([user.pk])
    return restored


def versions_for_history(document: Document, *, named_only: bool = False) -> QuerySet:
    """The document's versions for listings: newest first, without their states, each
    with `listed_authors`: up to `AUTHORS_LISTED + 1` of its authors (one more than a
    listing shows, to tell that there are others)."""
    user = get_user_model()
    authors = user.objects.order_by(user.USERNAME_FIELD, "pk")[: AUTHORS_LISTED + 1]
    versions = (
        DocumentVersion.objects.filter(document=document)
        .select_related("created_by", "restored_from")
        .defer("state", "restored_from__state")
        .prefetch_related(Prefetch("authors", queryset=authors, to_attr="listed_authors"))
        .order_by("-created_at", "-id")
    )
    if named_only:
        versions = versions.exclude(name="")
    return versions
