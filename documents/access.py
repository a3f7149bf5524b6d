"""
Who may read and who may write a document: the one place that decides.

Views call `get_document_for_user` / `get_editable_document_for_user`; the WebSocket
consumer calls `aget_document_access`. For now the owner and staff may read and write;
sharing adds roles here, not at the call sites.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeAlias

from asgiref.sync import sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404

from documents.models import Document

AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser


@dataclass(frozen=True)
class DocumentAccess:
    document: Document
    can_write: bool


def can_read(user: AnyUser, document: Document) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_staff) or document.owner_id == user.pk


def can_write(user: AnyUser, document: Document) -> bool:
    return can_read(user, document)


def get_document_access(user: AnyUser, pk: uuid.UUID | str) -> DocumentAccess | None:
    """The document and what `user` may do with it, or None when they may not read it
    (or it does not exist: the two are indistinguishable on purpose)."""
    if not user.is_authenticated:
        return None
    try:
        # A trashed document is closed to everyone, the editor's WebSocket included,
        # until its owner restores it (see `get_trashed_document_for_user`).
        document = Document.objects.get(pk=pk, deleted_at__isnull=True)
    except (Document.DoesNotExist, ValidationError, ValueError):
        return None
    if not can_read(user, document):
        return None
    return DocumentAccess(document=document, can_write=can_write(user, document))


aget_document_access = sync_to_async(get_document_access)


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
    """The live (not trashed) documents `user` may read, for listings. Documents shared
    with the user join this queryset when sharing exists; listings split it by owner."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user, deleted_at__isnull=True)


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
    return Document.objects.filter(owner=user, deleted_at__isnull=False)


def get_trashed_document_for_user(user: AnyUser, pk: uuid.UUID | str) -> Document:
    """A document in `user`'s trash; 404 otherwise."""
    try:
        return trashed_documents_for_user(user).get(pk=pk)
    except (Document.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such document in the trash.") from None
