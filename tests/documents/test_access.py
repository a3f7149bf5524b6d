from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from documents.access import (
    get_document_access,
    get_document_for_user,
    get_editable_document_for_user,
)
from documents.models import Document, Membership, Role


def test_the_owner_may_read_and_write(alice: AbstractUser, document: Document) -> None:
    assert get_document_for_user(alice, document.pk) == (document, True)
    assert get_editable_document_for_user(alice, document.pk) == document


def test_staff_may_read_and_write(staff: AbstractUser, document: Document) -> None:
    access = get_document_access(staff, document.pk)
    assert access is not None and access.can_write


def test_others_get_a_404_not_a_403(bob: AbstractUser, document: Document) -> None:
    # Existence of a document is not revealed to those who may not read it.
    with pytest.raises(Http404):
        get_document_for_user(bob, document.pk)
    with pytest.raises(Http404):
        get_editable_document_for_user(bob, document.pk)


@pytest.mark.parametrize("pk", [uuid.uuid4(), "not-a-uuid"])
def test_unknown_documents_have_no_access(alice: AbstractUser, pk: object) -> None:
    assert get_document_access(alice, pk) is None  # type: ignore[arg-type]


def test_anonymous_users_have_no_access(document: Document) -> None:
    assert get_document_access(AnonymousUser(), document.pk) is None


def test_a_writer_check_raises_permission_denied_for_readers(
    bob: AbstractUser, document: Document
) -> None:
    Membership.objects.create(document=document, user=bob, role=Role.VIEWER)
    assert get_document_for_user(bob, document.pk) == (document, False)
    with pytest.raises(PermissionDenied):
        get_editable_document_for_user(bob, document.pk)
