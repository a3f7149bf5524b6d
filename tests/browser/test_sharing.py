"""Sharing in the browser: the owner shares from the editor's panel, a viewer follows
along read-only and sees renames live, and revoking reaches the viewer's open page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import expect

from documents.access import role_for
from documents.models import Document, Role
from tests.browser.conftest import Session, wait_for_status, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_share_view_only_live_title_and_revocation(
    open_session: Callable[..., Session],
    alice: AbstractUser,
    bob: AbstractUser,
    document: Document,
) -> None:
    owner = open_session(alice)
    owner.page.goto(owner.url(document.get_absolute_url()))
    wait_for_status(owner.page, "Saved")
    owner.page.locator("[data-share-button]").click()
    panel = owner.page.locator("#share-panel")
    panel.get_by_placeholder("Username or e-mail").fill("bob@example.com")
    panel.locator("#share-role").select_option(Role.VIEWER)
    panel.get_by_role("button", name="Share", exact=True).click()
    expect(panel.locator('[data-person="bob"]')).to_contain_text("Viewer")
    assert role_for(bob, document) == Role.VIEWER

    viewer = open_session(bob)
    viewer.page.goto(viewer.url(document.get_absolute_url()))
    wait_for_status(viewer.page, "View only")
    # Read-only: no toolbar, and the editor does not take input.
    expect(viewer.page.locator("[data-toolbar]")).to_have_count(0)
    assert viewer.page.evaluate("() => window.collab.editor.isEditable") is False

    owner.page.locator(".ProseMirror").click()
    owner.page.keyboard.type("Shared plan")
    wait_for_text(viewer.page, "Shared plan")

    title = owner.page.locator("#document-title-input")
    title.fill("Renamed live")
    title.dispatch_event("change")
    expect(viewer.page.locator("[data-document-title]")).to_have_text("Renamed live")

    panel.locator('[data-person="bob"]').get_by_role("button", name="Remove").click()
    expect(panel.locator('[data-person="bob"]')).to_have_count(0)
    wait_for_status(viewer.page, "Your access to this document was removed")
    assert viewer.page.evaluate("() => window.collab.provider.shouldConnect") is False
