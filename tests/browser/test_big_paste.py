"""A paste far bigger than the server's frame cap (COLLAB_MAX_MESSAGE_BYTES, 1 MiB) goes out
in several updates (frontend/chunked-paste.js): it reaches the other person, is stored,
and is one undo step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Page

from documents.models import Document
from tests.browser.conftest import (
    Session,
    editor_text,
    open_editor,
    sockets,
    stored_text,
    wait_for_status,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FRAME_CAP = 1024 * 1024
# A 3 MB paste on a loaded 2-core machine: parsing, chunking, storing and fan-out.
BIG_WAIT_MS = 60_000

# Pastes window.pasteData (HTML and its text) as the browser does on Ctrl+V: a paste event
# with a DataTransfer, handled by ProseMirror's own paste path.
PASTE = """() => {
  const [html, text] = window.pasteData
  const data = new DataTransfer()
  data.setData('text/html', html)
  data.setData('text/plain', text)
  const init = { clipboardData: data, bubbles: true, cancelable: true }
  const event = new ClipboardEvent('paste', init)
  const started = performance.now()
  document.querySelector('.ProseMirror').dispatchEvent(event)
  window.pasteMs = performance.now() - started
  return event.defaultPrevented
}"""

# Drops window.pasteData (HTML) onto the start of the first paragraph, as a drag from
# another application would.
DROP = """() => {
  const data = new DataTransfer()
  data.setData('text/html', window.pasteData[0])
  const box = document.querySelector('.ProseMirror p').getBoundingClientRect()
  const init = {
    dataTransfer: data, bubbles: true, cancelable: true,
    clientX: box.left + 1, clientY: box.top + box.height / 2,
  }
  const event = new DragEvent('drop', init)
  document.querySelector('.ProseMirror').dispatchEvent(event)
  return event.defaultPrevented
}"""

# Formatted lines plus one paragraph of `huge` characters, built in the page.
BUILD = """([lines, huge]) => {
  const html = []
  const text = []
  for (let i = 0; i < lines; i++) {
    html.push(`<p>Line ${i}: <strong>bold ${i}</strong>, <em>italic</em> and ` +
      `<a href="https://example.org/${i}">link ${i}</a> with filler words lorem ipsum dolor.</p>`)
    text.push(`Line ${i}: bold ${i}, italic and link ${i} with filler words lorem ipsum dolor.`)
  }
  const word = 'paragraph '
  const big = 'Huge start ' + word.repeat(Math.ceil(huge / word.length)) + 'huge end.'
  html.splice(Math.floor(lines / 2), 0, `<p>${big}</p>`)
  text.splice(Math.floor(lines / 2), 0, big)
  window.pasteData = [html.join(''), text.join('\\n')]
  return window.pasteData[1].length
}"""

# Every local update's size and every close code, from now on.
RECORD = """() => {
  const { ydoc, provider, persistence } = window.collab
  window.updateSizes = []
  window.closeCodes = []
  ydoc.on('update', (update, origin) => {
    if (origin !== provider && origin !== persistence) window.updateSizes.push(update.length)
  })
  provider.on('connection-close', (event) => window.closeCodes.push(event && event.code))
}"""

DIGEST = """async () => {
  const json = JSON.stringify(window.collab.editor.getJSON())
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(json))
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('')
}"""


@pytest.fixture
def document(owner: AbstractUser) -> Document:
    return Document.objects.create(owner=owner, title="Big paste")


def doc_size(page: Page) -> int:
    return int(page.evaluate("() => window.collab.editor.state.doc.content.size"))


def wait_for_doc_size(page: Page, size: int, timeout: float) -> None:
    page.wait_for_function(
        "size => window.collab.editor.state.doc.content.size === size",
        arg=size,
        timeout=timeout,
        polling=250,
    )


@pytest.mark.timeout(300)
def test_a_paste_far_over_the_frame_cap_reaches_others_and_is_stored(
    open_session: Callable[..., Session],
    owner: AbstractUser,
    colleague: AbstractUser,
    document: Document,
) -> None:
    alice_page = open_editor(open_session(owner), document)
    stella_page = open_editor(open_session(colleague), document)
    alice_page.locator(".ProseMirror").click()
    alice_page.keyboard.type("Intro. ")
    wait_for_status(alice_page, "Saved")

    text_length = alice_page.evaluate(BUILD, [24_000, 1_200_000])
    assert text_length > 3_000_000
    alice_page.evaluate(RECORD)
    assert alice_page.evaluate(PASTE)

    # Split into updates (one frame each) comfortably below the cap, none of them refused.
    sizes = alice_page.evaluate("() => window.updateSizes")
    chunks = alice_page.evaluate("() => window.collab.editor.storage.chunkedPaste.chunks")
    took = alice_page.evaluate("() => Math.round(window.pasteMs)")
    print(f"paste: {took} ms, {len(sizes)} updates, {sum(sizes)} bytes, sizes {sizes}")
    assert len(sizes) == chunks > 1
    assert sum(sizes) > 3 * FRAME_CAP
    assert max(sizes) < FRAME_CAP // 2
    wait_for_status(alice_page, "Saved", BIG_WAIT_MS)
    assert alice_page.evaluate("() => window.closeCodes") == []
    assert sockets(alice_page) == {"opened": 1, "closed": 0}

    size = doc_size(alice_page)
    wait_for_doc_size(stella_page, size, BIG_WAIT_MS)
    digest = alice_page.evaluate(DIGEST)
    assert stella_page.evaluate(DIGEST) == digest
    alice_text = editor_text(alice_page)
    assert alice_text.startswith("Intro. Line 0: bold 0, italic and link 0")
    assert "Huge start paragraph" in alice_text and "paragraph huge end." in alice_text
    assert alice_text.endswith(
        "Line 23999: bold 23999, italic and link 23999 with filler words lorem ipsum dolor."
    )
    assert stella_page.locator(".ProseMirror p").nth(24_000).inner_text().startswith("Line 23999:")
    assert stella_page.locator(".ProseMirror a").nth(23_999).get_attribute("href") == (
        "https://example.org/23999"
    )

    # Stored: PostgreSQL holds it, and a browser without the local cache gets all of it.
    stored = stored_text(document.pk)
    assert "huge end." in stored and "link 23999" in stored
    fresh_page = open_editor(open_session(owner), document, BIG_WAIT_MS)
    wait_for_doc_size(fresh_page, size, BIG_WAIT_MS)
    assert fresh_page.evaluate(DIGEST) == digest
    alice_page.reload()
    wait_for_status(alice_page, "Saved", BIG_WAIT_MS)
    wait_for_doc_size(alice_page, size, BIG_WAIT_MS)
    assert alice_page.evaluate(DIGEST) == digest


# Medium content (some 250 KB, mixed blocks and marks), split into many small chunks by a
# lowered budget: the same document as the unsplit paste, and one undo step.
MIXED = """() => {
  const parts = []
  for (let i = 0; i < 300; i++) {
    parts.push(`<h2>Section ${i}</h2>`)
    parts.push(`<p>Para ${i} <strong>bold <em>both</em></strong> plain <code>code</code> ` +
      `<a href="https://example.org/${i}">link</a> ${'text '.repeat(40)}</p>`)
    parts.push(`<ul><li><p>item ${i}</p><ul><li><p>nested ${i}</p></li></ul></li>` +
      `<li><p>second ${i}</p></li></ul>`)
    parts.push(`<blockquote><p>quote ${i}</p></blockquote>`)
    parts.push(`<pre><code>code ${i}\\nline 2</code></pre>`)
  }
  parts.push(`<p>${'long '.repeat(8000)}end</p>`)
  window.pasteData = [parts.join(''), '']
}"""

# The cursor in the middle of the second paragraph, so that both ends of the paste join text.
PLACE_CURSOR = """() => {
  const { editor } = window.collab
  let target = null
  editor.state.doc.forEach((node, offset) => {
    if (node.textContent === 'Second paragraph.') target = offset
  })
  editor.commands.setTextSelection(target + 1 + 'Second '.length)
  window.collab.undoManager.stopCapturing()
}"""


@pytest.mark.timeout(180)
def test_a_split_paste_is_the_unsplit_document_and_one_undo_step(
    open_session: Callable[..., Session],
    owner: AbstractUser,
    colleague: AbstractUser,
    document: Document,
) -> None:
    alice_page = open_editor(open_session(owner), document)
    stella_page = open_editor(open_session(colleague), document)
    alice_page.locator(".ProseMirror").click()
    alice_page.keyboard.type("First paragraph.")
    alice_page.keyboard.press("Enter")
    alice_page.keyboard.type("Second paragraph.")
    alice_page.keyboard.press("Enter")
    alice_page.keyboard.type("Third paragraph.")
    wait_for_status(alice_page, "Saved")
    original = alice_page.evaluate("() => window.collab.editor.getJSON()")
    alice_page.evaluate(MIXED)

    def paste(chunk_bytes: int) -> tuple[object, int]:
        alice_page.evaluate(
            "n => { window.collab.editor.storage.chunkedPaste.chunkBytes = n;"
            " window.collab.editor.storage.chunkedPaste.chunks = 0 }",
            chunk_bytes,
        )
        alice_page.evaluate(PLACE_CURSOR)
        assert alice_page.evaluate(PASTE)
        chunks = alice_page.evaluate("() => window.collab.editor.storage.chunkedPaste.chunks")
        return alice_page.evaluate("() => window.collab.editor.getJSON()"), chunks

    unsplit, chunks = paste(1 << 30)
    assert chunks == 0
    alice_page.keyboard.press("Control+z")
    assert alice_page.evaluate("() => window.collab.editor.getJSON()") == original

    alice_page.evaluate(RECORD)
    split, chunks = paste(16 * 1024)
    assert chunks > 20
    assert split == unsplit
    assert len(alice_page.evaluate("() => window.updateSizes")) == chunks
    # The text after the cursor ends the last pasted block, as in an ordinary paste.
    assert "long endparagraph." in editor_text(alice_page)
    wait_for_status(alice_page, "Saved")
    size = doc_size(alice_page)
    wait_for_doc_size(stella_page, size, BIG_WAIT_MS)

    # One Ctrl+Z takes back all the chunks, for the other person too; one redo returns them.
    alice_page.keyboard.press("Control+z")
    assert alice_page.evaluate("() => window.collab.editor.getJSON()") == original
    assert alice_page.evaluate("() => window.collab.undoManager.redoStack.length") == chunks
    stella_page.wait_for_function(
        "() => window.collab.editor.getText() === 'First paragraph.\\n\\nSecond paragraph.\\n\\n"
        "Third paragraph.'",
        timeout=BIG_WAIT_MS,
    )
    alice_page.keyboard.press("Control+Shift+z")
    assert alice_page.evaluate("() => window.collab.editor.getJSON()") == split
    wait_for_doc_size(stella_page, size, BIG_WAIT_MS)
    wait_for_status(alice_page, "Saved")
    assert alice_page.evaluate("() => window.closeCodes") == []
    assert sockets(alice_page) == {"opened": 1, "closed": 0}
    assert stella_page.evaluate("() => window.collab.editor.getJSON()") == split


@pytest.mark.timeout(180)
def test_a_big_drop_is_split_too(
    open_session: Callable[..., Session], owner: AbstractUser, document: Document
) -> None:
    page = open_editor(open_session(owner), document)
    page.locator(".ProseMirror").click()
    page.keyboard.type("Dropped onto this.")
    wait_for_status(page, "Saved")
    original = page.evaluate("() => window.collab.editor.getJSON()")
    page.evaluate(MIXED)

    def drop(chunk_bytes: int) -> tuple[object, int]:
        page.evaluate(
            "n => { window.collab.editor.storage.chunkedPaste.chunkBytes = n;"
            " window.collab.editor.storage.chunkedPaste.chunks = 0;"
            " window.collab.undoManager.stopCapturing() }",
            chunk_bytes,
        )
        assert page.evaluate(DROP)
        chunks = page.evaluate("() => window.collab.editor.storage.chunkedPaste.chunks")
        return page.evaluate("() => window.collab.editor.getJSON()"), chunks

    unsplit, chunks = drop(1 << 30)
    assert chunks == 0 and unsplit != original
    page.keyboard.press("Control+z")
    assert page.evaluate("() => window.collab.editor.getJSON()") == original
    split, chunks = drop(16 * 1024)
    assert chunks > 20
    assert split == unsplit
    page.keyboard.press("Control+z")
    assert page.evaluate("() => window.collab.editor.getJSON()") == original
    wait_for_status(page, "Saved")
