from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from documents.models import Document
from documents.views import PAGE_SIZE

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice_client(client: Client, alice: AbstractUser) -> Client:
    client.force_login(alice)
    return client


def htmx(target: str) -> dict[str, str]:
    return {**HTMX, "HTTP_HX_TARGET": target}


def test_list_requires_sign_in(client: Client, db: None) -> None:
    response = client.get(reverse("documents:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_list_shows_only_my_live_documents(
    alice_client: Client, alice: AbstractUser, bob: AbstractUser
) -> None:
    Document.objects.create(owner=alice, title="Mine")
    Document.objects.create(owner=alice, title="Binned", deleted_at=timezone.now())
    Document.objects.create(owner=bob, title="Bob's secret")
    content = alice_client.get(reverse("documents:list")).content.decode()
    assert "Mine" in content
    assert "Binned" not in content
    assert "Bob&#x27;s secret" not in content and "Bob's secret" not in content


def test_list_is_newest_first_and_paginated(alice_client: Client, alice: AbstractUser) -> None:
    for number in range(PAGE_SIZE + 1):
        Document.objects.create(owner=alice, title=f"Doc {number:02d}")
    first = alice_client.get(reverse("documents:list")).content.decode()
    newest, oldest = f"Doc {PAGE_SIZE:02d}", "Doc 00"
    assert newest in first and oldest not in first
    assert first.index(newest) < first.index(f"Doc {PAGE_SIZE - 1:02d}")
    second = alice_client.get(reverse("documents:list"), {"page": 2}).content.decode()
    assert oldest in second and newest not in second


def test_search_by_title_returns_the_list_partial_to_htmx(
    alice_client: Client, alice: AbstractUser
) -> None:
    Document.objects.create(owner=alice, title="Quarterly plan")
    Document.objects.create(owner=alice, title="Shopping")
    response = alice_client.get(reverse("documents:list"), {"q": "PLAN"}, **htmx("document-list"))
    content = response.content.decode()
    assert "Quarterly plan" in content and "Shopping" not in content
    assert "<html" not in content
    assert content.lstrip().startswith('<section id="document-list"')


def test_shared_filter_excludes_my_own_documents(alice_client: Client, alice: AbstractUser) -> None:
    Document.objects.create(owner=alice, title="Mine")
    content = alice_client.get(reverse("documents:list"), {"show": "shared"}).content.decode()
    assert "Mine" not in content
    assert "Nothing is shared with you yet." in content


def test_titles_are_escaped(alice_client: Client, alice: AbstractUser) -> None:
    Document.objects.create(owner=alice, title="<script>alert(1)</script>")
    content = alice_client.get(reverse("documents:list")).content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_create_over_htmx_returns_the_list_with_the_new_document(
    alice_client: Client, alice: AbstractUser
) -> None:
    response = alice_client.post(reverse("documents:create"), {"title": "  Fresh   ideas "}, **HTMX)
    document = Document.objects.get(owner=alice)
    assert document.title == "Fresh ideas"
    content = response.content.decode()
    assert f'id="document-{document.pk}"' in content and "row--new" in content
    assert response["HX-Push-Url"] == reverse("documents:list")


def test_create_without_htmx_opens_the_editor(alice_client: Client, alice: AbstractUser) -> None:
    response = alice_client.post(reverse("documents:create"))
    document = Document.objects.get(owner=alice)
    assert document.title == "Untitled document"
    assert response["Location"] == document.get_absolute_url()


def test_post_without_csrf_token_is_refused(alice: AbstractUser) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("documents:create"), **HTMX).status_code == 403
    assert not Document.objects.exists()


def test_rename_notifies_open_editors_after_commit(
    alice_client: Client,
    document: Document,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with (
        mock.patch("collab.edits.notify_title") as notify,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = alice_client.post(
            reverse("documents:rename", args=[document.pk]),
            {"title": "Roadmap", "place": "editor"},
            **HTMX,
        )
    assert response.status_code == 200
    assert 'id="document-title"' in response.content.decode()
    document.refresh_from_db()
    assert document.title == "Roadmap"
    notify.assert_called_once_with(document.pk, "Roadmap")


def test_rename_from_the_list_returns_the_row(alice_client: Client, document: Document) -> None:
    form = alice_client.get(reverse("documents:rename", args=[document.pk]), **HTMX)
    assert 'name="title"' in form.content.decode()
    with mock.patch("collab.edits.notify_title"):
        row = alice_client.post(
            reverse("documents:rename", args=[document.pk]), {"title": "Renamed"}, **HTMX
        )
    assert 'class="row__title"' in row.content.decode()
    assert "Renamed" in row.content.decode()


def test_blank_rename_is_refused(alice_client: Client, document: Document) -> None:
    response = alice_client.post(
        reverse("documents:rename", args=[document.pk]), {"title": "   "}, **HTMX
    )
    assert response.status_code == 422
    document.refresh_from_db()
    assert document.title == "Plan"


def test_others_cannot_rename_or_delete(
    client: Client, bob: AbstractUser, document: Document
) -> None:
    client.force_login(bob)
    assert (
        client.post(reverse("documents:rename", args=[document.pk]), {"title": "x"}).status_code
        == 404
    )
    assert client.post(reverse("documents:delete", args=[document.pk])).status_code == 404
    document.refresh_from_db()
    assert document.title == "Plan" and document.deleted_at is None


def test_staff_may_edit_but_not_trash_someone_elses_document(
    client: Client, staff: AbstractUser, document: Document
) -> None:
    client.force_login(staff)
    assert client.get(document.get_absolute_url()).status_code == 200
    assert client.post(reverse("documents:delete", args=[document.pk])).status_code == 403


def test_delete_moves_to_trash_and_restore_brings_it_back(
    alice_client: Client, document: Document
) -> None:
    deleted = alice_client.post(reverse("documents:delete", args=[document.pk]), **HTMX)
    assert "moved to the trash" in deleted.content.decode()
    document.refresh_from_db()
    assert document.deleted_at is not None
    assert alice_client.get(document.get_absolute_url()).status_code == 404
    assert "Plan" not in alice_client.get(reverse("documents:list")).content.decode()
    assert "Plan" in alice_client.get(reverse("documents:trash")).content.decode()

    restored = alice_client.post(reverse("documents:restore", args=[document.pk]), **HTMX)
    assert "is back in your documents" in restored.content.decode()
    document.refresh_from_db()
    assert document.deleted_at is None
    assert alice_client.get(document.get_absolute_url()).status_code == 200


def test_undo_from_the_list_returns_the_row(alice_client: Client, document: Document) -> None:
    alice_client.post(reverse("documents:delete", args=[document.pk]), **HTMX)
    response = alice_client.post(
        reverse("documents:restore", args=[document.pk]), {"place": "list"}, **HTMX
    )
    assert f'id="document-{document.pk}"' in response.content.decode()
    assert 'class="row__title"' in response.content.decode()


def test_trash_holds_only_my_documents(
    client: Client, bob: AbstractUser, alice: AbstractUser
) -> None:
    Document.objects.create(owner=alice, title="Alice's old", deleted_at=timezone.now())
    client.force_login(bob)
    assert "Alice" not in client.get(reverse("documents:trash")).content.decode()


def test_editor_page_carries_the_editor_config(
    alice_client: Client, alice: AbstractUser, document: Document
) -> None:
    content = alice_client.get(document.get_absolute_url()).content.decode()
    assert 'id="editor-config"' in content
    assert f'"documentId": "{document.pk}"' in content
    assert '"canWrite": true' in content
    assert '"name": "alice"' in content
    assert "editor/editor.js" in content


def test_sign_up_creates_an_account_and_signs_in(client: Client, db: None) -> None:
    response = client.post(
        reverse("documents:signup"),
        {
            "username": "carol",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response["Location"] == reverse("documents:list")
    assert get_user_model().objects.filter(username="carol").exists()
    assert client.get(reverse("documents:list")).status_code == 200


def test_sign_up_rejects_mismatched_passwords(client: Client, db: None) -> None:
    response = client.post(
        reverse("documents:signup"),
        {"username": "carol", "password1": "a-long-pass-phrase-9", "password2": "other-phrase-99"},
    )
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="carol").exists()
