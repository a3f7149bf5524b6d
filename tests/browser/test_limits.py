"""Abuse limits as a person meets them in the browser: one tab too many says so and stops
reconnecting; one new document too many says when the next one can be made."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django_ratelimit.core import _get_window
from playwright.sync_api import expect

from documents.models import Document
from tests.browser.conftest import Session, open_editor, wait_for_status, wait_for_text
from tests.e2e.servers import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOO_MANY = "Too many open connections — close some tabs or windows, then reload"


@pytest.fixture
def server(transactional_db: None) -> Iterator[ServerProcess]:
    """The server of this module's sessions: one socket per user, two new documents an
    hour."""
    process = ServerProcess(
        f"browser-limits-{uuid.uuid4().hex[:6]}",
        env={"COLLAB_MAX_SOCKETS_PER_USER": "1", "DJANGO_DOCUMENT_CREATE_RATE": "2/h"},
    ).start()
    yield process
    process.stop()


def test_one_tab_too_many_says_so_and_stops_reconnecting(
    open_session: Callable[..., Session], alice: AbstractUser, document: Document
) -> None:
    session = open_session(alice)
    first = open_editor(session, document)

    second = session.context.new_page()
    second.goto(session.url(document.get_absolute_url()))
    wait_for_status(second, TOO_MANY)
    assert second.evaluate("() => window.collab.provider.shouldConnect") is False
    assert second.evaluate("() => window.collab.editor.isEditable") is False

    # The first tab is unaffected.
    first.locator(".ProseMirror").click()
    first.keyboard.type("first tab")
    wait_for_status(first, "Saved")

    # Closing the other tab and reloading is the way out, as the notice says.
    first.close()
    second.reload()
    wait_for_status(second, "Saved")
    wait_for_text(second, "first tab")


def user_with_window_open(rate_period: int) -> AbstractUser:
    """A user whose creation-rate window (staggered per key) does not end during the
    test, so that the count cannot reset halfway."""
    User = get_user_model()
    for n in range(100):
        user = User.objects.create_user(f"maker{n}", password="pw-maker-1")
        if _get_window(str(user.pk), rate_period) - time.time() > 120:
            return user
    raise AssertionError("no user with a window open long enough")


def test_one_document_too_many_shows_why_in_the_list(
    open_session: Callable[..., Session],
) -> None:
    user = user_with_window_open(3600)
    session = open_session(user)
    page = session.page
    page.goto(session.url("/documents/"))
    page.wait_for_load_state()
    for title in ("First", "Second", "Third"):
        page.fill("#new-title", title)
        page.get_by_role("button", name="New document").click()
        if title != "Third":
            expect(page.locator(f'#document-list li[data-title="{title}"]')).to_be_visible()
    notice = page.locator("#document-list [data-refused]")
    expect(notice).to_contain_text("You can create the next one in")
    expect(page.locator("#document-list .row__title")).to_have_text(["Second", "First"])
    assert not Document.objects.filter(owner=user, title="Third").exists()
