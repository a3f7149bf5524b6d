"""Browser tests: Playwright driving Debian's Chromium (never a downloaded browser)
against a real uvicorn process with PostgreSQL and Redis, each browser context reaching
the server through its own severable loopback proxy."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pycrdt import Doc, XmlFragment

from collab.persistence import load_document
from documents.models import Document
from tests.browser.proxy import LoopbackProxy
from tests.e2e.servers import ARTIFACTS, ServerProcess

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Bounded waits: long enough for a loaded 2-core machine, short enough to fail fast.
WAIT_MS = 15_000
playwright_sync.expect.set_options(timeout=WAIT_MS)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[playwright_sync.Browser]:
    """One Chromium per test module. Playwright's sync API keeps an event loop running in
    the test thread while it lives, which makes Django refuse the tests' (ordinary,
    blocking) ORM calls; allow them for exactly that long."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch() -> Iterator[playwright_sync.Browser]:
    if not CHROMIUM.exists():
        # A failure, not a skip: a suite that passes without its browser tests would
        # claim what it never checked. SKIP_BROWSER_TESTS=1 skips them knowingly.
        message = f"{CHROMIUM} is missing (apt-get install chromium, or CHROMIUM_PATH=...)"
        if os.environ.get("SKIP_BROWSER_TESTS") == "1":
            pytest.skip(message)
        pytest.fail(message)
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def server(transactional_db: None) -> Iterator[ServerProcess]:
    process = ServerProcess(f"browser-{uuid.uuid4().hex[:6]}").start()
    yield process
    process.stop()


@dataclass
class Session:
    """One person's browser context, reaching the server through its own proxy."""

    context: playwright_sync.BrowserContext
    page: playwright_sync.Page
    proxy: LoopbackProxy

    def url(self, path: str) -> str:
        return f"{self.proxy.url}{path}"


@pytest.fixture
def open_session(
    browser: playwright_sync.Browser, server: ServerProcess
) -> Iterator[Callable[..., Session]]:
    """Open a browser context, signed in as `user` when given."""
    sessions: list[Session] = []

    def open_(user: AbstractBaseUser | None = None) -> Session:
        proxy = LoopbackProxy(server.port).start()
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        context.set_default_timeout(WAIT_MS)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies["sessionid"]
            context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": proxy.url}])
        session = Session(context=context, page=context.new_page(), proxy=proxy)
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.context.close()
        session.proxy.stop()


def stored_text(document_id: uuid.UUID) -> str:
    """The document as PostgreSQL holds it (merged state plus update log), as XML text."""
    doc = Doc()
    for update in load_document(document_id).updates:
        doc.apply_update(update)
    return str(doc.get("default", type=XmlFragment))


def editor_text(page: playwright_sync.Page) -> str:
    return str(page.evaluate("() => window.collab.editor.getText()"))


def wait_for_status(page: playwright_sync.Page, text: str, timeout: float = WAIT_MS) -> None:
    playwright_sync.expect(page.locator("[data-status]")).to_have_text(text, timeout=timeout)


def wait_for_text(page: playwright_sync.Page, *needles: str) -> None:
    page.wait_for_function(
        "needles => needles.every(n => window.collab.editor.getText().includes(n))",
        arg=list(needles),
        timeout=WAIT_MS,
    )


def save_artifact(page: playwright_sync.Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def owner(transactional_db: None) -> AbstractUser:
    return get_user_model().objects.create_user("alice", password="pw-alice-1")


@pytest.fixture
def colleague(transactional_db: None) -> AbstractUser:
    """Staff may open every document: the stand-in for a collaborator until sharing exists."""
    return get_user_model().objects.create_user("stella", password="pw-stella-1", is_staff=True)


def open_editor(
    session: Session, document: Document, timeout: float = WAIT_MS
) -> playwright_sync.Page:
    page = session.page
    page.goto(session.url(document.get_absolute_url()))
    wait_for_status(page, "Saved", timeout)
    return page


def sockets(page: playwright_sync.Page) -> dict[str, int]:
    """How many WebSockets the page has opened and closed (the editor's own count)."""
    return dict(
        page.evaluate(
            "() => ({opened: window.collab.tracker.socketsOpened,"
            " closed: window.collab.tracker.socketsClosed})"
        )
    )
