"""Sign-in limits (django-axes) through the real sign-in view, with the real settings:
lockout per account and per address, the lockout page, and unlocking by an admin."""

from __future__ import annotations

import itertools

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from editor import settings as production

pytestmark = pytest.mark.django_db

LIMIT = production.AXES_FAILURE_LIMIT
_hosts = itertools.count(1)


def fresh_address() -> str:
    """An address no other attempt in this run came from (198.18.0.0/15 is for tests)."""
    n = next(_hosts)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def sign_in(username: str, password: str, address: str) -> HttpResponse:
    return Client().post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def signed_in(response: HttpResponse) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("documents:list")


def locked_out(response: HttpResponse) -> bool:
    return response.status_code == 429 and b"Sign-in paused" in response.content


def test_the_real_limits_are_in_force(settings) -> None:  # type: ignore[no-untyped-def]
    assert LIMIT == settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]


def test_an_account_is_locked_after_the_limit_from_any_mix_of_addresses(
    alice: AbstractUser, bob: AbstractUser
) -> None:
    # Spread over addresses, so that no single address reaches the limit.
    responses = [sign_in("alice", "wrong", fresh_address()) for _ in range(LIMIT)]
    assert not any(locked_out(r) for r in responses[:-1])
    assert locked_out(responses[-1])
    # Now even the right password is refused, from a new address too...
    elsewhere = fresh_address()
    refused = sign_in("alice", "pw-alice-1", elsewhere)
    assert locked_out(refused)
    assert "_auth_user_id" not in refused.wsgi_request.session
    # ...while another account signs in from there.
    assert signed_in(sign_in("bob", "pw-bob-1", elsewhere))


def test_an_address_is_locked_after_the_limit_over_any_accounts(
    alice: AbstractUser,
) -> None:
    address = fresh_address()
    responses = [sign_in(f"guess{i}", "wrong", address) for i in range(LIMIT)]
    assert locked_out(responses[-1]) and not locked_out(responses[-2])
    assert locked_out(sign_in("alice", "pw-alice-1", address))
    assert signed_in(sign_in("alice", "pw-alice-1", fresh_address()))


def test_fewer_failures_than_the_limit_lock_nothing(alice: AbstractUser) -> None:
    address = fresh_address()
    for _ in range(LIMIT - 1):
        assert sign_in("alice", "wrong", address).status_code == 200
    assert signed_in(sign_in("alice", "pw-alice-1", address))


def test_the_lockout_page_says_why_and_for_how_long(alice: AbstractUser) -> None:
    address = fresh_address()
    for _ in range(LIMIT):
        response = sign_in("alice", "wrong", address)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert "<html" in page and "Sign-in paused" in page  # a page, not a bare text
    assert "Too many failed sign-in attempts" in page
    assert "paused for 15 minutes" in page
    assert "ask an administrator" in page.lower()


def test_without_a_cool_off_the_page_says_an_admin_must_unlock(
    settings,  # type: ignore[no-untyped-def]
    alice: AbstractUser,
) -> None:
    settings.AXES_COOLOFF_TIME = None
    address = fresh_address()
    for _ in range(LIMIT):
        response = sign_in("alice", "wrong", address)
    assert locked_out(response)
    assert "until an administrator unlocks it" in response.content.decode()
    assert "Retry-After" not in response


def lock(username: str) -> None:
    for _ in range(LIMIT):
        sign_in(username, "wrong", fresh_address())
    assert locked_out(sign_in(username, "anything", fresh_address()))


def test_an_admin_unlocks_an_account_in_the_admin(alice: AbstractUser) -> None:
    lock("alice")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/axes/accessattempt/", {"q": "alice"})
    assert listing.status_code == 200 and b"alice" in listing.content
    attempts = list(AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True))
    assert attempts
    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert signed_in(sign_in("alice", "pw-alice-1", fresh_address()))


def test_the_reset_command_unlocks_an_account(alice: AbstractUser) -> None:
    lock("alice")
    call_command("axes_reset_username", "alice")
    assert signed_in(sign_in("alice", "pw-alice-1", fresh_address()))


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(
    settings,  # type: ignore[no-untyped-def]
    alice: AbstractUser,
    bob: AbstractUser,
) -> None:
    settings.BEHIND_PROXY = True
    client_address = fresh_address()
    for i in range(LIMIT):
        # Whatever the client writes into the header itself comes first and is ignored.
        Client().post(
            reverse("login"),
            {"username": f"guess{i}", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, {client_address}",
        )
    through_proxy = Client().post(
        reverse("login"),
        {"username": "alice", "password": "pw-alice-1"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR=client_address,
    )
    assert locked_out(through_proxy)
    # Others behind the same proxy are not locked out with that client.
    assert signed_in(
        Client().post(
            reverse("login"),
            {"username": "bob", "password": "pw-bob-1"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=fresh_address(),
        )
    )
