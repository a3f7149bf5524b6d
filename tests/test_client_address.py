"""The address sign-in and sign-up limits count against (editor/client_address.py)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from editor.client_address import limit_address


def address(remote: str, forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return limit_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_directly_exposed_the_header_is_ignored(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BEHIND_PROXY = False
    assert address("198.51.100.4", "203.0.113.9") == "198.51.100.4"


def test_behind_one_proxy_the_rightmost_entry_is_the_client(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = 1
    assert address("10.0.0.2", "6.6.6.6, 203.0.113.9") == "203.0.113.9"
    assert address("10.0.0.2", "203.0.113.9") == "203.0.113.9"
    assert address("10.0.0.2") == "10.0.0.2"  # no header: the peer


def test_behind_a_chain_of_proxies(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = 2
    # client -> CDN (appends the client) -> nginx (appends the CDN) -> us
    assert address("10.0.0.2", "6.6.6.6, 203.0.113.9, 192.0.2.1") == "203.0.113.9"
    assert address("10.0.0.2", "203.0.113.9") == "203.0.113.9"


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),  # the /64
        ("2001:db8:1:2::1", "2001:db8:1:2::"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("not an address", "0.0.0.0"),
        ("", "0.0.0.0"),
    ],
)
def test_ipv6_counts_per_64_and_junk_in_one_bucket(
    settings,  # type: ignore[no-untyped-def]
    remote: str,
    expected: str,
) -> None:
    settings.BEHIND_PROXY = False
    assert address(remote) == expected
