"""The Origin of a WebSocket handshake, read as a browser writes it (editor/origins.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser

from documents.models import Document
from editor.origins import origin_allowed, origin_host
from tests.collab.conftest import Connect

HOSTS = ["localhost", "127.0.0.1", "[::1]", ".example.org"]


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8810", "127.0.0.1"),
        ("https://localhost", "localhost"),
        ("http://localhost:80", "localhost"),
        ("https://localhost:443", "localhost"),
        ("http://[::1]:8000", "[::1]"),
        ("http://[::1]", "[::1]"),
        ("HTTP://LOCALHOST:8000", "localhost"),
        ("http://localhost.:8000", "localhost"),
        ("https://docs.example.org", "docs.example.org"),
        ("https://example.org", "example.org"),
    ],
)
def test_origins_a_browser_sends_for_an_allowed_host_are_accepted(origin: str, host: str) -> None:
    assert origin_host(origin) == host
    assert origin_allowed([origin], HOSTS)


@pytest.mark.parametrize(
    "origin",
    [
        # The quirk: urlparse's hostname stops at the first colon.
        "http://127.0.0.1:8810.evil.com",
        "http://localhost:8000.evil.com",
        # User information: the host is what follows "@".
        "http://evil@127.0.0.1",
        "http://127.0.0.1@evil.com",
        "http://127.0.0.1:8810@evil.com",
        "http://127.0.0.1\\@evil.com",
        # Another host that merely starts or ends like an allowed one.
        "http://127.0.0.1.evil.com",
        "http://evil-localhost",
        "http://localhost.evil.com:8000",
        "http://evilexample.org",
        "http://[::2]:8000",
        # Not an origin as browsers serialize it.
        "null",
        "",
        "127.0.0.1:8810",
        "//127.0.0.1:8810",
        "http:/127.0.0.1",
        "http://",
        "http://127.0.0.1/",
        "http://127.0.0.1:8810/ws",
        "http://127.0.0.1?x",
        "http://127.0.0.1#x",
        "http://127.0.0.1:",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:-1",
        "http://127.0.0.1 ",
        "http://127.0.0.1%2eevil.com",
        "http://[::1",
        "http://::1",
        "ws://127.0.0.1",
        "file://",
        "chrome-extension://abcdef",
        "http://lоcalhost",  # Cyrillic o: browsers send punycode
    ],
)
def test_anything_else_is_refused(origin: str) -> None:
    assert not origin_allowed([origin], HOSTS)


def test_no_origin_is_refused_unless_every_host_is_allowed() -> None:
    assert not origin_allowed([], HOSTS)
    assert origin_allowed([], ["*"])
    # "*" still takes only origins a browser could send.
    assert origin_allowed(["http://anything.example"], ["*"])
    assert not origin_allowed(["http://evil@"], ["*"])


def test_two_origin_headers_are_refused() -> None:
    assert not origin_allowed(["http://127.0.0.1", "http://127.0.0.1"], HOSTS)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8810.evil.com",
        "http://evil@localhost:8000",
        "http://localhost:8000/",
        "http://localhost.evil.example:8000",
    ],
)
async def test_the_quirks_channels_let_through_are_refused_before_accept(
    ws_connect: Connect, alice: AbstractUser, document: Document, origin: str
) -> None:
    with pytest.raises(PermissionError) as refused:
        await ws_connect(alice, document, origin=origin)
    # Closed before the handshake completed: a browser sees an HTTP 403.
    assert refused.value.args == (1000,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin", ["http://localhost:8000", "http://127.0.0.1:8810", "http://[::1]:8000"]
)
async def test_allowed_origins_reach_the_document(
    ws_connect: Connect, alice: AbstractUser, document: Document, origin: str
) -> None:
    client = await ws_connect(alice, document, origin=origin)
    await client.until(lambda: len(client.frames) >= 1)
    assert client.frames[0][:2] == b"\x00\x00"  # the server's step 1
