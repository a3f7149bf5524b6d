"""
The Origin check of WebSocket handshakes: a page on another site must not open a socket
with the user's cookies (cross-site WebSocket hijacking).

The header is read the way a browser writes it, `scheme://host[:port]` and nothing else,
and its host is held against ALLOWED_HOSTS with Django's own rules (`validate_host`: a
leading dot matches subdomains, a trailing dot and letter case do not matter), the rules
Django applies to the Host header of every HTTP request. Anything else is refused: a
path, user information (`http://evil@127.0.0.1`), a port that is not 1-65535, `null`
(sandboxed frames, file:// pages), schemes other than http and https, two Origin headers.
The port is not compared: ALLOWED_HOSTS names hosts, not ports.

Channels' AllowedHostsOriginValidator, which this replaces, parses the header with
`urlparse`, and `urlparse("http://127.0.0.1:8810.evil.com").hostname` is "127.0.0.1": a
page on any host name that starts with an allowed one and a colon passed.

A handshake without Origin (not a browser: browsers always send it on a WebSocket) is
refused, as before, unless ALLOWED_HOSTS is "*".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

SCHEMES = ("http://", "https://")
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]
"""What Django allows with DEBUG and an empty ALLOWED_HOSTS (HttpRequest.get_host)."""


def origin_host(origin: str) -> str | None:
    """The host of an Origin header value (lowercased, trailing dot removed), or None
    if the value is not `http(s)://host[:port]`."""
    lowered = origin.lower()
    scheme = next((s for s in SCHEMES if lowered.startswith(s)), None)
    if scheme is None:
        return None
    # Django's Host header grammar: a name of [a-z0-9.-] or a bracketed IPv6 address,
    # then an optional port of digits. "@", "/", "?", "#", "\\" and spaces never match.
    domain, port = split_domain_port(lowered[len(scheme) :])
    if not domain or (port and not 0 < int(port) <= 65535):
        return None
    return domain


def origin_allowed(origins: list[str], allowed_hosts: list[str]) -> bool:
    """Whether a handshake carrying these Origin header values may go on."""
    if not origins:
        return "*" in allowed_hosts
    if len(origins) > 1:
        return False
    host = origin_host(origins[0])
    return host is not None and validate_host(host, allowed_hosts)


class OriginCheck:
    """ASGI middleware for WebSocket handshakes: one whose Origin is not an allowed
    host is closed before it is accepted (HTTP 403)."""

    def __init__(self, application: Any, allowed_hosts: Iterable[str] | None = None) -> None:
        self.application = application
        if allowed_hosts is None:
            allowed_hosts = settings.ALLOWED_HOSTS
            if settings.DEBUG and not allowed_hosts:
                allowed_hosts = DEBUG_HOSTS
        self.allowed_hosts = list(allowed_hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        origins = [
            value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"origin"
        ]
        if origin_allowed(origins, self.allowed_hosts):
            await self.application(scope, receive, send)
        else:
            await WebsocketDenier()(scope, receive, send)
