"""
Changing who may open a document: sharing with people, links, roles, ownership.

Every change tells the document's live rooms once the transaction commits, so open
sockets are closed or downgraded within moments on every process (see
collab.edits.notify_access_changed).
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from documents.models import Document, Membership, Role, ShareLink


class SharingError(ValueError):
    """A sharing request that cannot be carried out; the message is for the user."""


def access_changed(document: Document) -> None:
    """Have live sockets of the document re-checked once the transaction commits."""
    # The one upward call from documents to collab, made after the commit (see
    # ARCHITECTURE.md "Dependency direction").
    from collab.edits import notify_access_changed

    document_id = document.pk
    transaction.on_commit(lambda: notify_access_changed(document_id))


def find_user(identifier: str) -> AbstractBaseUser:
    identifier = identifier.strip()
    users = get_user_model().objects.filter(
        Q(username__iexact=identifier) | Q(email__iexact=identifier), is_active=True
    )
    matches = list(users[:2])
    if len(matches) != 1:
        raise SharingError("No single person has that username or e-mail address.")
    return matches[0]


@transaction.atomic
def share_with(document: Document, identifier: str, role: str) -> Membership:
    """Give the person with this username or e-mail `role` (replacing a direct role)."""
    return set_role(document, find_user(identifier).pk, role)


@transaction.atomic
def set_role(document: Document, user_id: int, role: str) -> Membership:
    """Give the person `role` directly (replacing a direct role they had)."""
    if user_id == document.owner_id:
        raise SharingError("The owner already has full access.")
    membership, _ = Membership.objects.update_or_create(
        document=document, user_id=user_id, link=None, defaults={"role": Role(role)}
    )
    access_changed(document)
    return membership


@transaction.atomic
def remove_person(document: Document, user_id: int) -> None:
    """Take away every role the person has on the document, links included."""
    Membership.objects.filter(document=document, user_id=user_id).delete()
    access_changed(document)


@transaction.atomic
def transfer_ownership(document: Document, new_owner_id: int) -> None:
    """Make another person with access the owner; the previous owner stays an editor."""
    if not Membership.objects.filter(document=document, user_id=new_owner_id).exists():
        raise SharingError("Ownership can only go to someone the document is shared with.")
    previous = document.owner_id
    Membership.objects.filter(document=document, user_id=new_owner_id).delete()
    document.owner_id = new_owner_id
    document.save(update_fields=["owner"])
    Membership.objects.update_or_create(
        document=document, user_id=previous, link=None, defaults={"role": Role.EDITOR}
    )
    access_changed(document)


@transaction.atomic
def create_link(document: Document, role: str, *, created_by: AbstractBaseUser) -> ShareLink:
    return ShareLink.objects.create(
        document=document, role=Role(role), token=secrets.token_urlsafe(32), created_by=created_by
    )


@transaction.atomic
def revoke_link(link: ShareLink) -> None:
    """Delete the link and, with it, the access of everyone who came through it."""
    document = link.document
    link.delete()
    access_changed(document)


@transaction.atomic
def join_via_link(token: str, user: AbstractBaseUser) -> Document | None:
    """Give `user` the link's role; None when the link does not exist (any more)."""
    link = ShareLink.objects.select_related("document").filter(token=token).first()
    if link is None or link.document.deleted_at is not None:
        return None
    if user.pk != link.document.owner_id:
        Membership.objects.get_or_create(
            document=link.document, user=user, link=link, defaults={"role": link.role}
        )
    return link.document
