"""What the history pages show of a large document, version or comparison, and what they
leave to the exports (issue 12, item 4). Small documents with small limits stand in for
large ones; tests/documents/test_pages_at_cap.py measures a document at the size cap."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from documents.history import AUTHORS_LISTED, copy_children, take_version
from documents.models import Document, DocumentVersion
from documents.rendering import to_text
from tests.documents.editing import Writer


def client_for(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def two_versions(document: Document, alice: AbstractUser) -> list[DocumentVersion]:
    writer = Writer(document)
    for number in range(20):
        writer.paragraph(alice, f"paragraph {number} of the first version")
    first = take_version(document.pk)
    for number in range(20):
        writer.edit_paragraph(alice, number, f"paragraph {number} of the second version")
    second = take_version(document.pk)
    assert first is not None and second is not None
    return [first, second]


def test_pages_never_fetch_the_stored_state_they_do_not_show(
    document: Document, alice: AbstractUser, two_versions: list[DocumentVersion]
) -> None:
    # The access check read the whole document row: up to 32 MB for every page.
    client = client_for(alice)
    pages = [
        reverse("documents:list"),
        reverse("documents:detail", args=[document.pk]),
        reverse("documents:history", args=[document.pk]),
        reverse("documents:version", args=[document.pk, two_versions[0].pk]),
    ]
    for url in pages:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200, url
        selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
        assert not [sql for sql in selects if '"documents_document"."state"' in sql], url


def test_the_admin_measures_states_and_log_rows_without_fetching_them(
    document: Document, two_versions: list[DocumentVersion]
) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client = client_for(admin)
    Document.objects.filter(pk=document.pk).update(state=b"\x00" * 1234)
    pages = {
        "/admin/documents/document/": '"documents_document"."state"',
        f"/admin/documents/document/{document.pk}/change/": '"documents_document"."state"',
        "/admin/documents/documentupdate/": '"documents_documentupdate"."data"',
    }
    for url, column in pages.items():
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        assert page.status_code == 200, url
        measured = f"LENGTH({column})"
        fetched = [q["sql"] for q in queries if column in q["sql"].replace(measured, "")]
        assert not fetched, url
    listing = client.get("/admin/documents/document/").content.decode()
    assert '<td class="field-state_size">1234</td>' in listing


def test_long_versions_show_their_beginning_and_offer_the_exports(
    document: Document,
    alice: AbstractUser,
    two_versions: list[DocumentVersion],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = reverse("documents:version", args=[document.pk, two_versions[0].pk])
    whole = client_for(alice).get(url).content.decode()
    assert "paragraph 19 of the first version" in whole and "too long to show" not in whole
    monkeypatch.setattr("documents.rendering.PAGE_HTML_CHARS", 200)
    page = client_for(alice).get(url).content.decode()
    assert "paragraph 2 of" in page and "paragraph 19 of" not in page
    assert "This version is too long to show here in full" in page
    export = reverse("documents:export", args=[document.pk, "md"])
    assert f'href="{export}?version={two_versions[0].pk}"' in page


def test_long_comparisons_stop_with_a_note_and_the_exports(
    document: Document,
    alice: AbstractUser,
    two_versions: list[DocumentVersion],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_versions
    url = reverse("documents:compare", args=[document.pk]) + f"?from={first.pk}&to={second.pk}"
    monkeypatch.setattr("documents.diffs.DIFF_HTML_CHARS", 1_000)
    page = client_for(alice).get(url).content.decode()
    assert "<del>first</del><ins>second</ins>" in page
    assert "more changed blocks after this point" in page
    export = reverse("documents:export", args=[document.pk, "txt"])
    assert f'href="{export}?version={first.pk}"' in page
    assert f'href="{export}?version={second.pk}"' in page


def test_comparisons_of_too_large_versions_offer_the_exports(
    document: Document,
    alice: AbstractUser,
    two_versions: list[DocumentVersion],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = two_versions[0]
    monkeypatch.setattr("documents.history_views.COMPARE_NODES", 30)
    url = reverse("documents:compare", args=[document.pk]) + f"?from={first.pk}&to=now"
    response = client_for(alice).get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert "These versions are too large to compare here" in page and "<ins>" not in page
    export = reverse("documents:export", args=[document.pk, "txt"])
    assert f'href="{export}?version={first.pk}"' in page and f'href="{export}"' in page


def test_listings_name_a_bounded_number_of_authors(document: Document, alice: AbstractUser) -> None:
    users = [
        get_user_model().objects.create_user(f"writer{number:02}", f"w{number}@example.com")
        for number in range(AUTHORS_LISTED + 5)
    ]
    writer = Writer(document)
    for user in users:
        writer.paragraph(user, "a paragraph")
    version = take_version(document.pk)
    assert version is not None and version.authors.count() == AUTHORS_LISTED + 5
    client = client_for(alice)
    for url in (
        reverse("documents:history", args=[document.pk]),
        reverse("documents:version", args=[document.pk, version.pk]),
    ):
        page = client.get(url).content.decode()
        named = [user.get_username() for user in users if user.get_username() in page]
        assert named == [f"writer{number:02}" for number in range(AUTHORS_LISTED)], url
        assert "and others" in page, url


@pytest.mark.timeout(30)
def test_restoring_copies_a_long_version_in_linear_time() -> None:
    # Each copied child was appended at the end, which pycrdt finds from the start of the
    # list: 30,000 paragraphs took 10 s, a document at the size cap 21 s.
    source = Doc()
    paragraphs = source.get("default", type=XmlFragment)
    with source.transaction():
        for number in range(30_000):
            paragraph = paragraphs.children.insert(0, XmlElement("paragraph"))
            paragraph.children.append(XmlText(f"paragraph {number}"))
    target = Doc()
    copy = target.get("default", type=XmlFragment)
    started = time.process_time()
    with target.transaction():
        copy_children(paragraphs, copy)
    assert time.process_time() - started < 3.0
    assert to_text(copy) == to_text(paragraphs)
