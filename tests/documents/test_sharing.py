from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser

from documents.access import documents_for_user, role_for, writers_and_readers
from documents.models import Document, Membership, Role
from documents.sharing import (
    SharingError,
    create_link,
    join_via_link,
    remove_person,
    revoke_link,
    share_with,
    transfer_ownership,
)


def test_sharing_by_username_or_email_gives_the_role(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    share_with(document, "BOB@example.com", Role.VIEWER)
    assert role_for(bob, document) == Role.VIEWER
    share_with(document, "bob", Role.EDITOR)
    assert role_for(bob, document) == Role.EDITOR
    assert Membership.objects.filter(document=document, user=bob).count() == 1
    assert document in documents_for_user(bob)


@pytest.mark.parametrize("identifier", ["nobody", "alice"])
def test_sharing_with_nobody_or_the_owner_is_refused(
    alice: AbstractUser, document: Document, identifier: str
) -> None:
    with pytest.raises(SharingError):
        share_with(document, identifier, Role.EDITOR)


def test_a_link_gives_its_role_until_it_is_revoked(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    link = create_link(document, Role.EDITOR, created_by=alice)
    assert len(link.token) >= 40
    assert join_via_link(link.token, bob) == document
    assert role_for(bob, document) == Role.EDITOR
    revoke_link(link)
    assert role_for(bob, document) is None
    assert join_via_link(link.token, bob) is None


def test_the_strongest_role_wins_and_removal_takes_every_role(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    share_with(document, "bob", Role.VIEWER)
    join_via_link(create_link(document, Role.EDITOR, created_by=alice).token, bob)
    assert role_for(bob, document) == Role.EDITOR
    assert writers_and_readers(document.pk, {alice.pk, bob.pk}) == (
        {alice.pk, bob.pk},
        {alice.pk, bob.pk},
    )
    remove_person(document, bob.pk)
    assert role_for(bob, document) is None


def test_ownership_moves_to_someone_with_access(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    with pytest.raises(SharingError):
        transfer_ownership(document, bob.pk)
    share_with(document, "bob", Role.VIEWER)
    transfer_ownership(document, bob.pk)
    document.refresh_from_db()
    assert document.owner == bob
    assert role_for(alice, document) == Role.EDITOR


def test_a_trashed_document_has_no_readers(alice: AbstractUser, document: Document) -> None:
    document.deleted_at = document.created_at
    document.save(update_fields=["deleted_at"])
    assert writers_and_readers(document.pk, {alice.pk}) is None
