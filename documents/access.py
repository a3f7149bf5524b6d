"""
Who may read and who may write a document: the one place that decides.

Views call `get_document_for_user` / `get_editable_document_for_user`; the WebSocket
consumer calls `aget_document_access` and rooms re-check live sockets with
`writers_and_readers`. The owner and editors may write; viewers may read; staff may
read and write every document (they administer the site); nobody else gets in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeAlias

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import close_old_connections
from django.db.models import Q, QuerySet
from django.http import Http404

from documents.models import Document, Membership, Role

AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class DocumentAccess:
    document: Document
    can_write: bool


OWNER = "owner"


def role_for(user: AnyUser, document: Document) -> str | None:
    """ "owner", "editor", "viewer" or None. A person with several memberships (direct
    and through links) has the strongest of their roles."""
    if not user.is_authenticated:
        return None
    if document.owner_id == user.pk:
        return OWNER
    if user.is_staff:
        return Role.EDITOR
    roles = set(
        Membership.objects.filter(document=document, user=user).values_list("role", flat=True)
    )
    if Role.EDITOR in roles:
        return Role.EDITOR
    if Role.VIEWER in roles:
        return Role.VIEWER
    return None


def can_read(user: AnyUser, document: Document) -> bool:
    return role_for(user, document) is not None


def can_write(user: AnyUser, document: Document) -> bool:
    return role_for(user, document) in (OWNER, Role.EDITOR)


def writers_and_readers(
    document_id: uuid.UUID, user_ids: set[int]
) -> tuple[set[int], set[int]] | None:
    """Of `user_ids`, those who may write the document and those who may read it, in
    three queries whatever their number; None when the document is gone or trashed.
    Rooms call it to bring live sockets in line with access changes."""
    document = (
        Document.objects.filter(pk=document_id, deleted_at__isnull=True).defer("state").first()
    )
    if document is None:
        return None
    staff = set(
        get_user_model()
        .objects.filter(pk__in=user_ids, is_staff=True, is_active=True)
        .values_list("pk", flat=True)
    )
    writers = {document.owner_id} | staff
    readers = set(writers)
    for user_id, role in Membership.objects.filter(
        document=document, user_id__in=user_ids
    ).values_list("user_id", "role"):
        readers.add(user_id)
        if role == Role.EDITOR:
            writers.add(user_id)
    return writers & user_ids, readers & user_ids


def get_document_access(user: AnyUser, pk: uuid.UUID | str) -> DocumentAccess | None:
    """The document and what `user` may do with it, or None when they may not read it
    (or it does not exist: the two are indistinguishable on purpose)."""
    if not user.is_authenticated:
        return None
    try:
        # A trashed document is closed to everyone, the editor's WebSocket included,
        # until its owner restores it (see `get_trashed_document_for_user`).
        # Without its stored state: up to COLLAB_MAX_DOCUMENT_BYTES (32 MB) that no page
        # or socket check reads, fetched on every request (0.3-0.5 s at the cap).
        document = Document.objects.defer("state").get(pk=pk, deleted_at__isnull=True)
    except (Document.DoesNotExist, ValidationError, ValueError):
        return None
    role = role_for(user, document)
    if role is None:
        return None
    return DocumentAccess(document=document, can_write=role in (OWNER, Role.EDITOR))


def _get_document_access_then_close(user: AnyUser, pk: uuid.UUID | str) -> DocumentAccess | None:
    # Called from a WebSocket consumer: no request cycle closes the connection of the
    # thread this runs in, so close it here once it outlived CONN_MAX_AGE.
    try:
        return get_document_access(user, pk)
    finally:
        close_old_connections()


aget_document_access = sync_to_async(_get_document_access_then_close)


def get_document_for_user(user: AnyUser, pk: uuid.UUID | str) -> tuple[Document, bool]:
    """The document and whether `user` may write it; 404 when they may not read it."""
    access = get_document_access(user, pk)
    if access is None:
        raise Http404("No such document.")
    return access.document, access.can_write


def get_editable_document_for_user(user: AnyUser, pk: uuid.UUID | str) -> Document:
    document, writable = get_document_for_user(user, pk)
    if not writable:
        raise PermissionDenied
    return document


def documents_for_user(user: AnyUser) -> QuerySet[Document]:
    """The live (not trashed) documents `user` may read, for listings: their own and
    those shared with them; listings split it by owner."""
    if not user.is_authenticated:
        return Document.objects.none()
    shared = Membership.objects.filter(user=user).values("document_id")
    return (
        Document.objects.filter(Q(owner=user) | Q(pk__in=shared), deleted_at__isnull=True)
        .defer("state")  # up to 32 MB each, never shown
        .distinct()
    )


def can_trash(user: AnyUser, document: Document) -> bool:
    """Only the owner moves a document to the trash and back; writers may not."""
    return user.is_authenticated and document.owner_id == user.pk


def get_owned_document_for_user(user: AnyUser, pk: uuid.UUID | str) -> Document:
    """A live document `user` may trash; 404 when they may not read it, 403 when they
    may read but not trash it."""
    document, _ = get_document_for_user(user, pk)
    if not can_trash(user, document):
        raise PermissionDenied
    return document


def trashed_documents_for_user(user: AnyUser) -> QuerySet[Document]:
    """The documents in `user`'s trash: the ones they own and deleted."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user, deleted_at__isnull=False).defer("state")


def get_trashed_document_for_user(user: AnyUser, pk: uuid.UUID | str) -> Document:
    """A document in `user`'s trash; 404 otherwise."""
    try:
        return trashed_documents_for_user(user).get(pk=pk)
    except (Document.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such document in the trash.") from None
