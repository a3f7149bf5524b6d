"""Cross-cutting security checks: CSRF on every mutating route, and hostile titles, user
names and document content rendered inert on every page and export."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from collab.persistence import append_updates
from documents.history import take_version
from documents.models import Document, DocumentVersion, Membership, Role, ShareLink
from tests.documents.xss import PAYLOADS, hostile_doc

HOSTILE_TITLE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
HOSTILE_NAME = "<svg onload=alert(3)>"


def routes() -> Iterator[tuple[str, str]]:
    """(route, name) of every URL pattern of the project, flattened."""

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.name or ""

    yield from walk(get_resolver().url_patterns, "")


@pytest.fixture
def world(alice: AbstractUser) -> dict[str, object]:
    """A document full of hostile content, shared with a hostile-named person, with
    versions, a link and a trashed sibling."""
    document = Document.objects.create(owner=alice, title=HOSTILE_TITLE)
    append_updates(document.pk, [(hostile_doc(), alice.pk)])
    version = take_version(document.pk, kind=DocumentVersion.Kind.NAMED, name=HOSTILE_TITLE)
    hostile = get_user_model().objects.create_user("placeholder", "h@example.com", "pw-h-1")
    hostile.username = HOSTILE_NAME  # validators forbid it at sign-up; rendering must cope
    hostile.save()
    Membership.objects.create(document=document, user=hostile, role=Role.VIEWER)
    link = ShareLink.objects.create(document=document, token="t" * 43, role=Role.VIEWER)
    trashed = Document.objects.create(owner=alice, title=HOSTILE_TITLE)
    trashed.deleted_at = trashed.created_at
    trashed.save()
    assert version is not None
    return {"document": document, "version": version, "user": hostile, "link": link}


def fill(route: str, world: dict[str, object]) -> str:
    document = world["document"]
    assert isinstance(document, Document)
    values = {
        "uuid:pk": str(document.pk),
        "uuid:document_id": str(document.pk),
        "int:version_id": str(world["version"].pk),  # type: ignore[attr-defined]
        "int:user_id": str(world["user"].pk),  # type: ignore[attr-defined]
        "int:link_id": str(world["link"].pk),  # type: ignore[attr-defined]
        "str:token": "t" * 43,
        "str:fmt": "html",
    }
    path = re.sub(r"<([^>]+)>", lambda m: values.get(m.group(1), "x"), route)
    return "/" + path.lstrip("^").rstrip("$")


def test_every_mutating_route_refuses_a_post_without_a_csrf_token(
    alice: AbstractUser, world: dict[str, object]
) -> None:
    client = Client(enforce_csrf_checks=True, HTTP_HX_REQUEST="true")
    client.force_login(alice)
    checked = 0
    for route, name in routes():
        if route.startswith("admin/") or "ws/" in route:
            continue
        response = client.post(fill(route, world), {"title": "x", "name": "x", "role": "editor"})
        assert response.status_code == 403, (route, name, response.status_code)
        assert b"CSRF" in response.content, route
        checked += 1
    assert checked >= 20
    document = world["document"]
    assert isinstance(document, Document)
    document.refresh_from_db()
    assert document.title == HOSTILE_TITLE and document.deleted_at is None


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "script":
            self.scripts.append(dict(attrs))


def assert_inert(html: str, where: str) -> None:
    page = Page()
    page.feed(html)
    page.close()
    for script in page.scripts:
        # The site's own files, or JSON data (json_script escapes < > & inside).
        assert (script.get("src") or "").startswith("/static/") or script.get(
            "type"
        ) == "application/json", (where, script)
    assert not {"iframe", "svg", "img", "object", "embed"} & set(page.tags), where
    for name, value in page.attrs:
        assert not name.startswith("on"), (where, name, value)
        if name in ("href", "src", "action", "formaction"):
            assert not re.match(r"\s*(javascript|data|vbscript):", value or "", re.I), where
    for payload in (*PAYLOADS, HOSTILE_TITLE, HOSTILE_NAME):
        assert payload not in html, (where, payload)


def test_hostile_titles_names_and_content_are_inert_everywhere(
    alice: AbstractUser, world: dict[str, object]
) -> None:
    document = world["document"]
    version = world["version"]
    assert isinstance(document, Document) and isinstance(version, DocumentVersion)
    client = Client()
    client.force_login(alice)
    pages = [
        "/documents/",
        f"/documents/?q={HOSTILE_TITLE[:5]}",
        "/documents/trash/",
        f"/documents/{document.pk}/",
        f"/documents/{document.pk}/share/",
        f"/documents/{document.pk}/history/",
        f"/documents/{document.pk}/history/?named=1",
        f"/documents/{document.pk}/history/{version.pk}/",
        f"/documents/{document.pk}/compare/?a={version.pk}",
        f"/documents/{document.pk}/export.html",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_inert(response.content.decode(), path)
    for fmt in ("md", "txt"):
        response = client.get(f"/documents/{document.pk}/export.{fmt}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/")
        assert "html" not in response["Content-Type"]
