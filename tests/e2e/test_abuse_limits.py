"""Abuse limits hold across server processes: two uvicorn processes sharing PostgreSQL and
Redis count one user's sockets and one address's sign-ups together."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django_ratelimit.core import _get_window

from collab.socket_cap import TTL_SECONDS
from documents.models import Document
from tests.e2e.pyclient import Disconnected, YClient
from tests.e2e.servers import ServerProcess
from tests.e2e.test_two_servers import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOO_MANY_SOCKETS = 4409


async def open_client(
    server: ServerProcess, document: Document, user: AbstractUser, *, sync: bool = True
) -> YClient:
    cookie = await database_sync_to_async(session_cookie)(user)
    return await YClient.open(
        f"{server.ws_url}/{document.pk}", cookie=cookie, origin=server.http_url, sync=sync
    )


async def attempt(server: ServerProcess, document: Document, user: AbstractUser) -> YClient | int:
    """A synced client, or the code its socket was closed with."""
    try:
        client = await open_client(server, document, user)
        await client.until(lambda: client.synced)
    except Disconnected as closed:
        return closed.code
    return client


async def test_one_users_sockets_are_counted_over_both_processes(
    start_server: Callable[..., ServerProcess], document: Document, alice: AbstractUser
) -> None:
    env = {"COLLAB_MAX_SOCKETS_PER_USER": "3"}
    one, two = start_server("cap-a", env=env), start_server("cap-b", env=env)
    opened = [
        await open_client(one, document, alice),
        await open_client(one, document, alice),
        await open_client(two, document, alice),
    ]
    try:
        for client in opened:
            await client.until(lambda c=client: c.synced)
        # The fourth, on either process, is one too many.
        for server in (two, one):
            refused = await open_client(server, document, alice, sync=False)
            assert await refused.until_closed() == TOO_MANY_SOCKETS
            assert "Too many open connections" in str(refused.ws.close_reason)

        # A socket closed on one process makes room on the other.
        await opened.pop(0).close()
        opened.append(await open_client(two, document, alice))
        await opened[-1].until(lambda: opened[-1].synced)

        # A process killed outright cannot subtract its sockets: they count until its
        # hash in Redis expires (TTL_SECONDS), then the place is free again.
        one.kill()
        killed_at = time.monotonic()
        await opened[0].until_closed()
        assert await attempt(two, document, alice) == TOO_MANY_SOCKETS
        while True:
            assert time.monotonic() - killed_at < TTL_SECONDS + 10, "never freed"
            outcome = await attempt(two, document, alice)
            if isinstance(outcome, YClient):
                opened.append(outcome)
                break
            assert outcome == TOO_MANY_SOCKETS
            await asyncio.sleep(0.5)  # a retry interval, as a browser's backoff would be
        assert time.monotonic() - killed_at > 1  # it did count for a while
    finally:
        for client in opened:
            await client.close()


def address_with_time_left(period: int, margin: float = 120) -> str:
    """A documentation address whose fixed rate window (django-ratelimit staggers them
    by key) does not end within `margin` seconds: a test of a limit must not see its
    count reset halfway."""
    for last in range(1, 255):
        address = f"198.51.100.{last}"
        if _get_window(address, period) - time.time() > margin:
            return address
    raise AssertionError("no address with a window open long enough")


def form_post(
    server: ServerProcess, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """GET the form (for its CSRF token), POST it; the final status and page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = f"{server.http_url}{path}"
    with opener.open(url, timeout=5) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def sign_up(server: ServerProcess, username: str, address: str) -> int:
    fields = {
        "username": username,
        "password1": "a-long-pass-phrase-9",
        "password2": "a-long-pass-phrase-9",
    }
    # Behind the (here imaginary) proxy, the client is the address it appended.
    status, page = form_post(server, "/documents/signup/", fields, {"X-Forwarded-For": address})
    if status == 429:
        assert "Too many accounts" in page
    return status


def test_sign_ups_from_one_address_are_counted_over_both_processes(
    start_server: Callable[..., ServerProcess],
) -> None:
    env = {"DJANGO_SIGNUP_RATE": "3/h", "DJANGO_BEHIND_PROXY": "true"}
    one, two = start_server("signup-a", env=env), start_server("signup-b", env=env)
    address = address_with_time_left(3600)
    statuses = [sign_up((one, two)[i % 2], f"newcomer{i}", address) for i in range(4)]
    # Three accounts (the redirect to the list was followed: 200), then 429.
    assert statuses == [200, 200, 200, 429]
    users = get_user_model().objects.filter(username__startswith="newcomer")
    assert sorted(users.values_list("username", flat=True)) == [
        "newcomer0",
        "newcomer1",
        "newcomer2",
    ]
    # Another address is not affected.
    other = "203.0.113.77"
    assert sign_up(one, "elsewhere", other) == 200


def test_the_lockout_page_under_the_asgi_server(
    start_server: Callable[..., ServerProcess], alice: AbstractUser
) -> None:
    # django-axes takes another path under ASGI (its middleware's async branch).
    server = start_server("lockout", env={"DJANGO_LOGIN_FAILURE_LIMIT": "3"})
    wrong = {"username": "alice", "password": "wrong"}
    assert [form_post(server, "/accounts/login/", wrong)[0] for _ in range(2)] == [200, 200]
    status, page = form_post(server, "/accounts/login/", wrong)
    assert status == 429 and "Sign-in paused" in page and "paused for 15 minutes" in page
    right = {"username": "alice", "password": "pw-alice-1"}
    status, page = form_post(server, "/accounts/login/", right)
    assert status == 429 and "Sign-in paused" in page
