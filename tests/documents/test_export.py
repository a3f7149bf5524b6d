from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

from documents.history import Kind, take_version
from documents.models import Document
from tests.documents.editing import Writer
from tests.documents.xss import assert_inert_html, assert_inert_markdown, hostile_doc


@pytest.fixture
def client(alice: AbstractUser) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def export(client: Client, document: Document, fmt: str, version: int | None = None):  # type: ignore[no-untyped-def]
    url = reverse("documents:export", args=[document.pk, fmt])
    return client.get(url + (f"?version={version}" if version else ""))


@pytest.mark.parametrize(
    ("fmt", "content_type", "body"),
    [
        ("html", "text/html; charset=utf-8", "<p>now</p>"),
        ("md", "text/markdown; charset=utf-8", "then\n\nnow\n"),
        ("txt", "text/plain; charset=utf-8", "then\n\nnow\n"),
    ],
)
def test_export_of_the_current_document(
    client: Client, document: Document, alice: AbstractUser, fmt: str, content_type: str, body: str
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "then")
    writer.paragraph(alice, "now")
    response = export(client, document, fmt)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="Plan.{fmt}"'
    assert body in response.content.decode()


def test_export_of_a_version(client: Client, document: Document, alice: AbstractUser) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "old")
    version = take_version(document.pk)
    assert version is not None
    writer.paragraph(alice, "new")
    response = export(client, document, "md", version.pk)
    assert response.content.decode() == "old\n"
    assert response["Content-Disposition"] == (
        f'attachment; filename="Plan-version-{version.pk}.md"'
    )


def test_file_names_come_only_from_safe_characters(
    client: Client, document: Document, alice: AbstractUser
) -> None:
    Document.objects.filter(pk=document.pk).update(title='a"; b\r\nX-Evil: 1/../é')
    disposition = export(client, document, "txt")["Content-Disposition"]
    assert disposition == 'attachment; filename="a-b-X-Evil-1.txt"'


def test_unknown_formats_and_versions_are_404(
    client: Client, document: Document, alice: AbstractUser, staff: AbstractUser
) -> None:
    assert export(client, document, "pdf").status_code == 404
    assert export(client, document, "md", 999999).status_code == 404
    other = Document.objects.create(owner=staff)
    Writer(other).paragraph(staff, "secret")
    foreign = take_version(other.pk)
    assert foreign is not None
    # A version id of another document does not leak through this one.
    assert export(client, document, "md", foreign.pk).status_code == 404


def test_hostile_content_is_inert_in_every_export(
    client: Client, document: Document, alice: AbstractUser
) -> None:
    Document.objects.filter(pk=document.pk).update(state=hostile_doc())
    version = take_version(document.pk, kind=Kind.NAMED, name="x", user=alice)
    assert version is not None
    for version_id in (None, version.pk):
        html = export(client, document, "html", version_id)
        assert "Content-Security-Policy" in html.content.decode()
        assert_inert_html(html.content.decode())
        assert_inert_markdown(export(client, document, "md", version_id).content.decode())
        text = export(client, document, "txt", version_id)
        assert text["Content-Type"].startswith("text/plain")
        assert text["X-Content-Type-Options"] == "nosniff"
