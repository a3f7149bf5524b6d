from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

from documents.history import Kind, current_content, take_version
from documents.models import Document, DocumentVersion, Membership, Role
from documents.rendering import load_fragment, to_text
from tests.documents.editing import Writer
from tests.documents.xss import PAYLOADS, assert_inert_page, hostile_doc


def client_for(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def versions(document: Document, alice: AbstractUser, bob: AbstractUser) -> list[DocumentVersion]:
    writer = Writer(document)
    writer.paragraph(alice, "hello world")
    first = take_version(document.pk)
    writer.edit_paragraph(bob, 0, "hello brave world")
    second = take_version(document.pk, kind=Kind.NAMED, name="Brave <b>draft</b>", user=alice)
    assert first is not None and second is not None
    return [first, second]


@pytest.fixture
def viewer(document: Document, bob: AbstractUser) -> AbstractUser:
    """Bob, given read-only access."""
    Membership.objects.create(document=document, user=bob, role=Role.VIEWER)
    return bob


def urls(document: Document, version: DocumentVersion) -> list[str]:
    return [
        reverse("documents:history", args=[document.pk]),
        reverse("documents:version", args=[document.pk, version.pk]),
        reverse("documents:compare", args=[document.pk]) + f"?to={version.pk}",
        reverse("documents:compare", args=[document.pk]) + f"?from={version.pk}&to=now",
    ]


def test_history_lists_versions_newest_first_with_authors_and_names(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    response = client_for(alice).get(reverse("documents:history", args=[document.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index(f'id="version-{versions[1].pk}"') < page.index(
        f'id="version-{versions[0].pk}"'
    )
    assert "Brave &lt;b&gt;draft&lt;/b&gt;" in page
    assert "bob" in page and "+6" in page
    assert page.count('class="history__day"') == 1


def test_history_filters_named_versions(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    url = reverse("documents:history", args=[document.pk]) + "?named=1"
    page = client_for(alice).get(url).content.decode()
    assert f'id="version-{versions[1].pk}"' in page
    assert f'id="version-{versions[0].pk}"' not in page


def test_history_pages_load_more_through_htmx(
    document: Document, alice: AbstractUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("documents.history_views.PAGE_SIZE", 2)
    writer = Writer(document)
    for number in range(5):
        writer.paragraph(alice, f"p{number}")
        take_version(document.pk)
    client = client_for(alice)
    url = reverse("documents:history", args=[document.pk])
    first = client.get(url).content.decode()
    assert first.count('class="row history__version"') == 2 and "Load more" in first
    more = client.get(url + "?page=3", headers={"HX-Request": "true"})
    body = more.content.decode()
    assert "<html" not in body and body.count('class="row history__version"') == 1
    assert "Load more" not in body


def test_version_page_renders_the_content(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    page = client_for(alice).get(urls(document, versions[0])[1]).content.decode()
    assert "<p>hello world</p>" in page and "Restore this version" in page


def test_compare_marks_words(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    page = client_for(alice).get(urls(document, versions[1])[2]).content.decode()
    assert "<ins>brave </ins>" in page and "+6" in page
    Writer(document, current_content(document.pk).state).edit_paragraph(alice, 0, "hello world")
    now = client_for(alice).get(urls(document, versions[1])[3]).content.decode()
    assert "<del>brave </del>" in now


def test_compare_collapses_unchanged_stretches(document: Document, alice: AbstractUser) -> None:
    writer = Writer(document)
    for number in range(20):
        writer.paragraph(alice, f"paragraph {number}")
    first = take_version(document.pk)
    writer.edit_paragraph(alice, 10, "paragraph ten")
    assert first is not None
    url = reverse("documents:compare", args=[document.pk]) + f"?from={first.pk}&to=now"
    page = client_for(alice).get(url).content.decode()
    # One block of context on each side of the change; the rest folded.
    assert "9 unchanged blocks" in page and "8 unchanged blocks" in page
    assert "<p>paragraph 9</p>" in page.split("</details>")[1]
    assert "<del>10</del><ins>ten</ins>" in page


def test_people_without_access_get_404_everywhere(
    document: Document, bob: AbstractUser, versions: list[DocumentVersion]
) -> None:
    client = client_for(bob)
    for url in urls(document, versions[0]):
        assert client.get(url).status_code == 404, url
    restore = reverse("documents:version_restore", args=[document.pk, versions[0].pk])
    assert client.post(restore).status_code == 404
    assert client.post(reverse("documents:version_name", args=[document.pk])).status_code == 404
    export = reverse("documents:export", args=[document.pk, "md"])
    assert client.get(export).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(
    document: Document, versions: list[DocumentVersion]
) -> None:
    response = Client().get(reverse("documents:history", args=[document.pk]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_readers_see_history_but_cannot_restore_or_name(
    document: Document, viewer: AbstractUser, versions: list[DocumentVersion]
) -> None:
    client = client_for(viewer)
    for url in urls(document, versions[0]):
        assert client.get(url).status_code == 200, url
    assert "Restore this version" not in client.get(urls(document, versions[0])[1]).content.decode()
    restore = reverse("documents:version_restore", args=[document.pk, versions[0].pk])
    assert client.post(restore).status_code == 403
    name = reverse("documents:version_name", args=[document.pk])
    assert client.post(name, {"name": "mine"}).status_code == 403
    assert to_text(load_fragment(current_content(document.pk).state)) == "hello brave world\n"


def test_writers_restore_and_the_history_records_it(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    restore = reverse("documents:version_restore", args=[document.pk, versions[0].pk])
    response = client_for(alice).post(restore)
    assert response.status_code == 302
    assert to_text(load_fragment(current_content(document.pk).state)) == "hello world\n"
    page = client_for(alice).get(response["Location"]).content.decode()
    assert "Restore of the version" in page


def test_restore_needs_post_and_csrf(
    document: Document, alice: AbstractUser, versions: list[DocumentVersion]
) -> None:
    restore = reverse("documents:version_restore", args=[document.pk, versions[0].pk])
    assert client_for(alice).get(restore).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(restore).status_code == 403


def test_naming_the_current_content(document: Document, alice: AbstractUser) -> None:
    Writer(document).paragraph(alice, "text")
    url = reverse("documents:version_name", args=[document.pk])
    client = client_for(alice)
    assert client.post(url, {"name": "  "}).status_code == 400
    response = client.post(url, {"name": "Final"}, headers={"HX-Request": "true"})
    assert response.status_code == 201 and "Final" in response.content.decode()
    version = DocumentVersion.objects.get(document=document)
    assert (version.kind, version.name, version.created_by) == (Kind.NAMED, "Final", alice)


def test_hostile_content_is_inert_on_every_page(document: Document, alice: AbstractUser) -> None:
    Document.objects.filter(pk=document.pk).update(state=hostile_doc())
    first = take_version(document.pk, kind=Kind.NAMED, name=PAYLOADS[0], user=alice)
    assert first is not None
    Writer(document, current_content(document.pk).state).paragraph(alice, PAYLOADS[1])
    second = take_version(document.pk, kind=Kind.NAMED, name=PAYLOADS[2], user=alice)
    assert second is not None
    client = client_for(alice)
    for url in urls(document, second):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_inert_page(response.content.decode())
