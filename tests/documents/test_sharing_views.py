from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client

from documents.access import role_for
from documents.models import Document, Membership, Role, ShareLink


def htmx_client(user: AbstractUser) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser does, and the token htmx would send."""
    client = Client(enforce_csrf_checks=True, HTTP_HX_REQUEST="true")
    client.force_login(user)
    client.get("/documents/")  # sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


def test_the_owner_shares_from_the_panel(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    client, token = htmx_client(alice)
    response = client.post(
        f"/documents/{document.pk}/share/people/",
        {"identifier": "bob", "role": Role.EDITOR},
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200
    assert b'data-person="bob"' in response.content
    assert role_for(bob, document) == Role.EDITOR


def test_htmx_posts_without_a_csrf_token_are_refused(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    client, _ = htmx_client(alice)
    response = client.post(
        f"/documents/{document.pk}/share/people/", {"identifier": "bob", "role": Role.EDITOR}
    )
    assert response.status_code == 403
    assert not Membership.objects.exists()


def test_only_the_owner_changes_sharing(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    Membership.objects.create(document=document, user=bob, role=Role.EDITOR)
    client, token = htmx_client(bob)
    panel = client.get(f"/documents/{document.pk}/share/")
    assert panel.status_code == 200 and b"Create link" not in panel.content
    response = client.post(
        f"/documents/{document.pk}/share/links/", {"role": Role.EDITOR}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 403 and not ShareLink.objects.exists()


def test_strangers_do_not_see_the_panel(bob: AbstractUser, document: Document) -> None:
    client, _ = htmx_client(bob)
    assert client.get(f"/documents/{document.pk}/share/").status_code == 404


def test_a_link_lets_a_signed_in_person_in_until_revoked(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    owner, token = htmx_client(alice)
    owner.post(
        f"/documents/{document.pk}/share/links/", {"role": Role.VIEWER}, HTTP_X_CSRFTOKEN=token
    )
    link = ShareLink.objects.get()
    visitor = Client()
    assert visitor.get(f"/documents/join/{link.token}/").status_code == 302  # to sign in
    visitor.force_login(bob)
    response = visitor.get(f"/documents/join/{link.token}/")
    assert response.status_code == 302 and response["Location"] == document.get_absolute_url()
    assert role_for(bob, document) == Role.VIEWER
    owner.post(f"/documents/{document.pk}/share/links/{link.pk}/revoke/", HTTP_X_CSRFTOKEN=token)
    assert role_for(bob, document) is None
    assert visitor.get(f"/documents/join/{link.token}/").status_code == 404


def test_ownership_can_be_handed_over(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    Membership.objects.create(document=document, user=bob, role=Role.VIEWER)
    client, token = htmx_client(alice)
    response = client.post(
        f"/documents/{document.pk}/share/people/{bob.pk}/",
        {"action": "make-owner"},
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200 and b"Create link" not in response.content
    document.refresh_from_db()
    assert document.owner == bob and role_for(alice, document) == Role.EDITOR


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'])
def test_names_and_titles_are_escaped_in_the_panel(
    alice: AbstractUser, document: Document, name: str
) -> None:
    user = get_user_model().objects.create_user(username="x" + str(len(name)), email="x@x.org")
    user.username = name  # as a custom user model or admin edit could allow
    user.save()
    document.title = name
    document.save()
    Membership.objects.create(document=document, user=user, role=Role.VIEWER)
    client, _ = htmx_client(alice)
    body = client.get(f"/documents/{document.pk}/share/").content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;" in body or "&lt;img" in body


def test_the_owner_changes_a_persons_role(
    alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    Membership.objects.create(document=document, user=bob, role=Role.EDITOR)
    client, token = htmx_client(alice)
    response = client.post(
        f"/documents/{document.pk}/share/people/{bob.pk}/",
        {"action": Role.VIEWER},
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200
    assert role_for(bob, document) == Role.VIEWER
    assert Membership.objects.filter(document=document, user=bob).count() == 1
