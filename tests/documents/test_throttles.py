"""Sign-ups per address and new documents per user, with the real default rates, counted
in the real (Redis) cache."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client
from django.urls import reverse
from django_ratelimit.core import _get_window, _split_rate

from documents.models import Document
from editor import settings as production

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "document-list"}


def window_open(key: str, rate: str, margin: float = 120) -> bool:
    """Whether the fixed window django-ratelimit counts `key` in (staggered per key) lasts
    `margin` seconds more: a test of a limit must not see its count reset halfway."""
    _, period = _split_rate(rate)
    return _get_window(key, period) - time.time() > margin


def address_for(rate: str, start: int) -> str:
    for host in range(start, start + 250):
        address = f"198.19.{host // 250}.{host % 250 + 1}"
        if window_open(address, rate):
            return address
    raise AssertionError("no address with a window open long enough")


def test_the_counters_are_in_redis_shared_by_every_process() -> None:
    assert isinstance(caches["default"], RedisCache)


def test_sign_ups_from_one_address_are_limited_with_a_429_page(
    settings,  # type: ignore[no-untyped-def]
) -> None:
    rate = production.SIGNUP_RATE
    assert rate == settings.SIGNUP_RATE == "10/h"
    limit, _ = _split_rate(rate)
    address = address_for(rate, 0)

    def sign_up(username: str, remote: str) -> int:
        response = Client().post(
            reverse("documents:signup"),
            {
                "username": username,
                "password1": "a-long-pass-phrase-9",
                "password2": "a-long-pass-phrase-9",
            },
            REMOTE_ADDR=remote,
        )
        if response.status_code == 429:
            page = response.content.decode()
            assert "Too many accounts" in page and "Try again in" in page
            assert int(response["Retry-After"]) > 0
        return response.status_code

    assert [sign_up(f"person{i}", address) for i in range(limit)] == [302] * limit
    assert sign_up("one-too-many", address) == 429
    assert not get_user_model().objects.filter(username="one-too-many").exists()
    assert sign_up("from-elsewhere", address_for(rate, 1000)) == 302


def test_the_sign_up_form_itself_is_not_counted(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SIGNUP_RATE = "1/h"
    address = address_for("1/h", 2000)
    for _ in range(3):
        assert Client().get(reverse("documents:signup"), REMOTE_ADDR=address).status_code == 200


def signed_in_with_open_window(rate: str) -> tuple[AbstractUser, Client]:
    """A new user whose creation window does not end during the test."""
    User = get_user_model()
    for n in range(100):
        user = User.objects.create_user(f"maker{n}-{time.monotonic_ns()}", password="pw-maker-1")
        if window_open(str(user.pk), rate):
            client = Client()
            client.force_login(user)
            return user, client
    raise AssertionError("no user with a window open long enough")


def test_document_creation_is_limited_per_user(settings) -> None:  # type: ignore[no-untyped-def]
    rate = production.DOCUMENT_CREATE_RATE
    assert rate == settings.DOCUMENT_CREATE_RATE == "60/h"
    limit, _ = _split_rate(rate)
    user, client = signed_in_with_open_window(rate)
    for _ in range(limit):
        assert client.post(reverse("documents:create")).status_code == 302
    refused = client.post(reverse("documents:create"))
    assert refused.status_code == 429
    assert "You can create the next one in" in refused.content.decode()
    assert Document.objects.filter(owner=user).count() == limit
    # Another user is not held up by this one.
    _, other = signed_in_with_open_window(rate)
    assert other.post(reverse("documents:create")).status_code == 302


def test_htmx_gets_the_list_with_the_reason_on_top(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DOCUMENT_CREATE_RATE = "2/h"
    user, client = signed_in_with_open_window("2/h")
    for title in ("One", "Two"):
        assert client.post(reverse("documents:create"), {"title": title}, **HTMX).status_code == 200
    refused = client.post(reverse("documents:create"), {"title": "Three"}, **HTMX)
    assert refused.status_code == 429
    page = refused.content.decode()
    assert page.lstrip().startswith('<section id="document-list"')
    assert "data-refused" in page and "You can create the next one in" in page
    assert "One" in page and "Two" in page and "Three" not in page
    assert "HX-Push-Url" not in refused
    assert not Document.objects.filter(owner=user, title="Three").exists()


def test_off_turns_a_limit_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DOCUMENT_CREATE_RATE = None
    _, client = signed_in_with_open_window("1/h")
    for _ in range(3):
        assert client.post(reverse("documents:create")).status_code == 302
