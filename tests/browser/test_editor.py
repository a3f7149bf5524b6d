from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Page, expect

from documents.models import Document
from tests.browser.conftest import (
    WAIT_MS,
    Session,
    editor_text,
    open_editor,
    save_artifact,
    sockets,
    stored_text,
    wait_for_status,
    wait_for_text,
)
from tests.e2e.servers import database_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OFFLINE = "Offline — changes kept on this device"


@pytest.fixture
def document(owner: AbstractUser) -> Document:
    return Document.objects.create(owner=owner, title="Launch plan")


def type_at_end(page: Page, text: str) -> None:
    page.locator(".ProseMirror").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def test_two_people_type_at_once_and_see_each_other(
    open_session: Callable[..., Session],
    owner: AbstractUser,
    colleague: AbstractUser,
    document: Document,
) -> None:
    alice_page = open_editor(open_session(owner), document)
    stella_page = open_editor(open_session(colleague), document)
    alice_page.locator(".ProseMirror").click()
    stella_page.locator(".ProseMirror").click()

    # Keystrokes alternate between the two pages without waiting for any sync, so
    # updates cross in flight.
    alice_words, stella_words = "Alice writes the intro. ", "Stella adds figures. "
    for index in range(max(len(alice_words), len(stella_words))):
        alice_page.keyboard.type(alice_words[index : index + 1])
        stella_page.keyboard.type(stella_words[index : index + 1])

    for page in (alice_page, stella_page):
        wait_for_text(page, alice_words.strip(), stella_words.strip())
    assert editor_text(alice_page) == editor_text(stella_page)
    for words in (alice_words.strip(), stella_words.strip()):
        assert editor_text(alice_page).count(words) == 1

    expect(alice_page.locator(".collaboration-carets__label")).to_have_text("stella")
    expect(stella_page.locator(".collaboration-carets__label")).to_have_text("alice")
    for page in (alice_page, stella_page):
        expect(page.locator("[data-presence] li")).to_have_count(2)
        names = page.locator("[data-presence] li").evaluate_all(
            "items => items.map(item => item.dataset.name).sort()"
        )
        assert names == ["alice", "stella"]

    wait_for_status(alice_page, "Saved")
    wait_for_status(stella_page, "Saved")
    stored = stored_text(document.pk)
    assert alice_words.strip() in stored and stella_words.strip() in stored

    # Undo takes back only Alice's own last change (the Yjs undo manager), never Stella's
    # later one; redo returns it.
    # Typing within 500 ms joins one undo step; start a new one deterministically.
    alice_page.evaluate("() => window.collab.undoManager.stopCapturing()")
    type_at_end(alice_page, " Alice draft.")
    wait_for_text(stella_page, "Alice draft.")
    type_at_end(stella_page, " Stella note.")
    wait_for_text(alice_page, "Stella note.")
    alice_page.keyboard.press("Control+z")
    stella_page.wait_for_function(
        "() => !window.collab.editor.getText().includes('Alice draft.')", timeout=WAIT_MS
    )
    for words in (alice_words.strip(), stella_words.strip(), "Stella note."):
        assert words in editor_text(stella_page)
    alice_page.keyboard.press("Control+Shift+z")
    wait_for_text(stella_page, "Alice draft.", "Stella note.")

    # Formatting from the toolbar reaches the other person as structure, not just text.
    alice_page.evaluate("() => window.collab.editor.commands.focus('end')")
    alice_page.keyboard.press("Enter")
    alice_page.select_option("[data-toolbar] select", "h2")
    alice_page.keyboard.type("Next steps")
    alice_page.keyboard.press("Enter")
    alice_page.click("[data-toolbar] [data-command=bulletList]")
    alice_page.keyboard.type("Draft the outline")
    alice_page.keyboard.press("Enter")
    alice_page.keyboard.type("Review with ")
    alice_page.keyboard.press("Control+b")
    alice_page.keyboard.type("Stella")
    expect(stella_page.locator(".ProseMirror h2")).to_have_text("Next steps")
    expect(stella_page.locator(".ProseMirror ul li")).to_have_count(2)
    expect(stella_page.locator(".ProseMirror ul li strong")).to_have_text("Stella")

    # Give the caret label a selection to show on, then keep the picture.
    stella_page.locator(".ProseMirror p").first.click()
    stella_page.keyboard.press("End")
    stella_page.keyboard.press("Shift+Home")
    expect(alice_page.locator(".ProseMirror-yjs-selection")).not_to_have_count(0)
    # Fast typing never got a socket closed (e.g. by the server's presence rate limit).
    assert sockets(alice_page) == sockets(stella_page) == {"opened": 1, "closed": 0}
    # docs/screenshot.png (README) is a committed copy of this artifact.
    save_artifact(alice_page, "two-users.png")


def test_offline_edits_survive_a_real_disconnect_and_a_reload(
    open_session: Callable[..., Session],
    owner: AbstractUser,
    colleague: AbstractUser,
    document: Document,
) -> None:
    alice = open_session(owner)
    alice_page = open_editor(alice, document)
    stella_page = open_editor(open_session(colleague), document)
    type_at_end(alice_page, "Agenda.")
    wait_for_text(stella_page, "Agenda.")
    assert sockets(alice_page) == {"opened": 1, "closed": 0}

    # Phase 1: the connection really drops, both keep typing, it comes back.
    alice.proxy.sever()
    wait_for_status(alice_page, OFFLINE)
    assert sockets(alice_page)["closed"] == 1
    type_at_end(alice_page, " Alice offline one.")
    type_at_end(stella_page, " Stella online one.")
    wait_for_status(alice_page, OFFLINE)
    wait_for_status(stella_page, "Saved")
    assert "Alice offline one." not in stored_text(document.pk)
    assert alice.proxy.websockets_refused >= 1

    alice.proxy.restore()
    wait_for_status(alice_page, "Saved")
    assert sockets(alice_page) == {"opened": 2, "closed": 1}
    assert alice.proxy.websockets_opened == 2
    for page in (alice_page, stella_page):
        wait_for_text(page, "Alice offline one.", "Stella online one.")

    # Phase 2: offline again, then a reload while offline keeps the offline edits.
    alice.proxy.sever()
    wait_for_status(alice_page, OFFLINE)
    type_at_end(alice_page, " Alice offline two.")
    type_at_end(stella_page, " Stella online two.")
    wait_for_status(alice_page, OFFLINE)
    alice_page.reload()
    wait_for_status(alice_page, OFFLINE)
    wait_for_text(alice_page, "Agenda.", "Alice offline one.", "Alice offline two.")
    assert "Stella online two." not in editor_text(alice_page)
    type_at_end(alice_page, " Alice after reload.")
    wait_for_status(alice_page, OFFLINE)

    alice.proxy.restore()
    wait_for_status(alice_page, "Saved")
    wait_for_status(stella_page, "Saved")
    phrases = [
        "Agenda.",
        "Alice offline one.",
        "Stella online one.",
        "Alice offline two.",
        "Stella online two.",
        "Alice after reload.",
    ]
    for page in (alice_page, stella_page):
        wait_for_text(page, *phrases)
    final = editor_text(alice_page)
    assert final == editor_text(stella_page)
    stored = stored_text(document.pk)
    for phrase in phrases:
        assert final.count(phrase) == 1, phrase
        assert stored.count(phrase) == 1, phrase


@pytest.fixture
def row_lock() -> Iterator[Callable[[Document], psycopg.Connection]]:
    """Hold a document's row lock from outside the server, so its next commit waits."""
    connections: list[psycopg.Connection] = []

    def lock(document: Document) -> psycopg.Connection:
        connection = psycopg.connect(database_url())
        connection.execute(
            "SELECT 1 FROM documents_document WHERE id = %s FOR UPDATE", [document.pk]
        )
        connections.append(connection)
        return connection

    yield lock
    for connection in connections:
        connection.close()


def wait_for_blocked_writer(timeout_s: float) -> None:
    """Until some PostgreSQL session of the test database waits on a row lock."""
    with psycopg.connect(database_url(), autocommit=True) as watcher:
        watcher.execute(
            "SELECT set_config('statement_timeout', %s, false)", [str(int(timeout_s * 1000))]
        )
        # pg_sleep inside one bounded statement keeps the wait server-side and bounded.
        watcher.execute(
            """
            DO $$ BEGIN
              WHILE NOT EXISTS (
                SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'
              ) LOOP PERFORM pg_sleep(0.05); END LOOP;
            END $$;
            """
        )


def test_saved_appears_only_after_the_edit_is_in_postgresql(
    open_session: Callable[..., Session],
    owner: AbstractUser,
    document: Document,
    row_lock: Callable[[Document], psycopg.Connection],
) -> None:
    page = open_editor(open_session(owner), document)
    lock = row_lock(document)
    shown_before = page.evaluate("() => window.collab.statusLog.length")
    type_at_end(page, "Committed words.")

    # The server has the edit and is blocked committing it: not saved yet.
    wait_for_blocked_writer(WAIT_MS / 1000)
    expect(page.locator("[data-status]")).to_have_text("Saving…")
    assert "Committed words." not in stored_text(document.pk)

    lock.rollback()
    wait_for_status(page, "Saved")
    assert "Committed words." in stored_text(document.pk)
    shown = page.evaluate("n => window.collab.statusLog.slice(n)", shown_before)
    assert shown == ["Saving…", "Saved"]
