from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from documents.models import Document
from tests.browser.conftest import Session, wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CACHES = """async () => (await indexedDB.databases())
    .map(d => d.name).filter(n => n.startsWith('editor-cache:'))"""


def row(page: Page, title: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#document-list li[data-title="{title}"]')


def create(page: Page, title: str) -> None:
    page.fill("#new-title", title)
    page.get_by_role("button", name="New document").click()
    expect(row(page, title)).to_be_visible()
    expect(page.locator("#new-title")).to_have_value("")


def test_documents_list_without_page_reloads(
    open_session: Callable[..., Session], transactional_db: None
) -> None:
    session = open_session()
    page = session.page
    page.goto(session.url("/accounts/login/"))
    page.click("text=Sign up")
    page.fill("#id_username", "dora")
    page.fill("#id_password1", "a-long-pass-phrase-9")
    page.fill("#id_password2", "a-long-pass-phrase-9")
    page.click("button:has-text('Sign up')")
    expect(page.locator("h1")).to_have_text("Documents")
    page.wait_for_load_state()
    # Survives htmx swaps, not a page load.
    page.evaluate("() => { window.stillTheSamePage = true }")

    create(page, "Budget 2026")
    create(page, "Team offsite")
    titles = page.locator("#document-list .row__title").all_text_contents()
    assert titles == ["Team offsite", "Budget 2026"]  # newest first

    row(page, "Team offsite").get_by_role("button", name="Rename").click()
    page.fill("#document-list input[name=title]", "Offsite agenda")
    page.click("#document-list button:has-text('Save')")
    expect(row(page, "Offsite agenda")).to_be_visible()
    assert Document.objects.filter(title="Offsite agenda").exists()

    page.fill("#id_q", "budget")
    expect(page.locator("#document-list .row__title")).to_have_text(["Budget 2026"])
    page.fill("#id_q", "")
    expect(page.locator("#document-list .row__title")).to_have_count(2)

    row(page, "Budget 2026").get_by_role("button", name="Delete").click()
    expect(page.locator("#document-list")).to_contain_text("“Budget 2026” moved to the trash.")
    page.click("#document-list button:has-text('Undo')")
    expect(row(page, "Budget 2026")).to_be_visible()
    row(page, "Budget 2026").get_by_role("button", name="Delete").click()
    expect(page.locator("#document-list")).to_contain_text("moved to the trash")
    assert Document.objects.get(title="Budget 2026").deleted_at is not None
    assert page.evaluate("() => window.stillTheSamePage") is True

    page.click("nav >> text=Trash")
    # htmx (deferred) binds on DOMContentLoaded; a click before that is a plain form post.
    page.wait_for_load_state()
    page.evaluate("() => { window.stillTheSamePage = true }")
    trashed = page.locator('#trash-list li[data-title="Budget 2026"]')
    trashed.get_by_role("button", name="Restore").click()
    expect(page.locator("#trash-list")).to_contain_text("is back in your documents")
    assert Document.objects.get(title="Budget 2026").deleted_at is None
    assert page.evaluate("() => window.stillTheSamePage") is True

    # Signing out deletes this device's document caches.
    page.click("#trash-list a:has-text('Budget 2026')")
    wait_for_status(page, "Saved")
    page.locator(".ProseMirror").click()
    page.keyboard.type("Numbers")
    wait_for_status(page, "Saved")
    assert len(page.evaluate(CACHES)) == 1
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.evaluate(CACHES) == []
