"""
The address a request's sign-in and sign-up limits count against.

Directly exposed, that is the peer of the TCP connection (REMOTE_ADDR). Behind a proxy
(DJANGO_BEHIND_PROXY=true) every request comes from the proxy, so the client is the
entry the proxy appended to X-Forwarded-For: the rightmost one for one proxy, the
DJANGO_PROXY_COUNT-th from the right for a chain. Entries further left were written by
the client and are never trusted, and the header is ignored entirely without the
setting: otherwise anyone could pick the address they are counted under.

An IPv6 client counts as its /64, the block one host (or one customer) usually holds:
counting single addresses would give it 2^64 fresh tries.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPV6_PREFIX = 64


def limit_address(request: HttpRequest) -> str:
    """The client's IPv4 address, or the network address of its IPv6 /64."""
    address = _client(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        # Not an address (a Unix socket peer, a mangled header): one shared bucket, so
        # that it is limited rather than unlimited.
        return "0.0.0.0"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        network = ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False)
        return str(network.network_address)
    return str(parsed)


def _client(request: HttpRequest) -> str:
    peer = str(request.META.get("REMOTE_ADDR") or "")
    if not settings.BEHIND_PROXY:
        return peer
    forwarded = [
        entry.strip()
        for entry in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if entry.strip()
    ]
    if not forwarded:
        return peer
    hops = settings.PROXY_COUNT
    return forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
