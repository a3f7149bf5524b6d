from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from documents.rendering import (
    MAX_DEPTH,
    load_fragment,
    safe_href,
    to_blocks,
    to_html,
    to_markdown,
    to_text,
)
from tests.documents.xss import assert_inert_html, assert_inert_markdown, hostile_doc

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "tiptap.json").read_text())


class _Tree(HTMLParser):
    """HTML as a list of (event, tag, sorted attributes, data): equal trees compare equal
    whatever the attribute order and entity spelling."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str, tuple[tuple[str, str | None], ...], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(sorted(attrs)), ""))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag, (), ""))

    def handle_data(self, data: str) -> None:
        self.events.append(("data", "", (), data))


def tree(html: str) -> list[tuple[str, str, tuple[tuple[str, str | None], ...], str]]:
    parser = _Tree()
    parser.feed(html)
    parser.close()
    return parser.events


def fixture_fragment(name: str) -> XmlFragment:
    return load_fragment(base64.b64decode(FIXTURES[name]["update"]))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_html_matches_what_tiptap_renders(name: str) -> None:
    assert tree(to_html(fixture_fragment(name))) == tree(FIXTURES[name]["html"])


def test_the_rich_fixture_covers_every_node_and_mark() -> None:
    html = FIXTURES["rich"]["html"]
    for needle in (
        "<h1>",
        "<h2>",
        "<h3>",
        "<strong>",
        "<em>",
        "<s>",
        "<code>",
        "<u>",
        'href="https://',
        'href="mailto:',
        "<br>",
        "<ul>",
        '<ol start="3">',
        'data-type="taskList"',
        'data-checked="true"',
        'data-checked="false"',
        'class="language-python"',
        "<blockquote>",
        "<hr>",
    ):
        assert needle in html, needle


def test_markdown_of_every_node_and_mark() -> None:
    markdown = to_markdown(fixture_fragment("rich"))
    for line in (
        "# Title é \\<one\\>",
        "## Second",
        "Plain **bold** *italic* ~~strike~~ `code` <u>under</u> ***both*** and "
        "[link](<https://example.org/a?b=1&c=2>) and [**bold link**](<mailto:a@example.org>)",
        "line one\\\nline two",
        "- one\n  - nested\n- two",
        "3. three\n4. four",
        "- [x] done\n- [ ] todo\n  - [ ] sub",
        '```python\ndef f(x):\n    return x < 1 and "&"\n```',
        "> quoted\n>\n> second *para*",
        "---",
    ):
        assert line in markdown, line


def test_plain_text_keeps_words_and_list_markers() -> None:
    text = to_text(fixture_fragment("rich"))
    assert "Plain bold italic strike code under both and link" in text
    assert "3. three" in text and "- [x] done" in text
    assert "<b>not bold</b>" in text  # plain text is not markup: nothing to escape
    assert "**" not in text


def test_unsafe_link_loses_its_target_like_tiptap() -> None:
    assert 'href=""' in to_html(fixture_fragment("unsafe_link"))
    assert to_markdown(fixture_fragment("unsafe_link")).strip() == "click here"


@pytest.mark.parametrize(
    ("href", "kept"),
    [
        ("https://example.org", True),
        ("http://x.y/z", True),
        ("MAILTO:a@b.c", True),
        ("javascript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\nscript:alert(1)", False),
        ("data:text/html,x", False),
        ("/relative", False),
        (None, False),
    ],
)
def test_safe_href(href: str | None, kept: bool) -> None:
    assert bool(safe_href(href)) is kept


def test_hostile_content_is_inert_in_html_and_markdown() -> None:
    fragment = load_fragment(hostile_doc())
    html = to_html(fragment)
    assert_inert_html(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert_inert_markdown(to_markdown(fragment))


def test_unknown_elements_never_appear_as_tags() -> None:
    doc = Doc()
    fragment = doc.get("default", type=XmlFragment)
    fragment.children.append(XmlElement("marquee")).children.append(XmlText("hi"))
    paragraph = fragment.children.append(XmlElement("paragraph"))
    paragraph.children.append(XmlElement("blink")).children.append(XmlText("inline"))
    assert to_html(fragment) == "<div>hi</div><p><span>inline</span></p>"


def deep_update(depth: int) -> bytes:
    doc = Doc()
    element = doc.get("default", type=XmlFragment).children.append(XmlElement("blockquote"))
    with doc.transaction():
        for _ in range(depth):
            element = element.children.append(XmlElement("blockquote"))
        element.children.append(XmlText("bottom"))
    return doc.get_update()


def test_a_30000_deep_chain_renders_flat_without_crashing() -> None:
    fragment = load_fragment(deep_update(30_000))
    html = to_html(fragment)
    assert html.count("<blockquote>") == MAX_DEPTH
    assert "bottom" in html
    assert "bottom" in to_markdown(fragment) and "bottom" in to_text(fragment)
    assert [block.text for block in to_blocks(fragment)] == ["bottom"]


def test_empty_document_renders_empty() -> None:
    fragment = load_fragment(b"")
    assert (to_html(fragment), to_markdown(fragment), to_text(fragment)) == ("", "", "")


# Recorded with Tiptap 3 + y-tiptap (same extensions as record_tiptap.mjs): a paragraph
# "bold", hardBreak, "more", all three bold. The authoring editor's getHTML() keeps the
# mark open across the break ("<strong>bold<br>more</strong>"), but y-tiptap stores no marks
# on element nodes, so every editor that loads the document from Yjs (other clients, a
# reload) shows the form below; the server renders what those editors show.
MARKED_BREAK_UPDATE = (
    "AQq4oYb5CwAHAQdkZWZhdWx0AwlwYXJhZ3JhcGgHALihhvkLAAYGALihhvkLAQRib2xkAnt9hLihhvkLAgRib2xk"
    "hrihhvkLBgRib2xkBG51bGyHuKGG+QsBAwloYXJkQnJlYWuHuKGG+QsIBgYAuKGG+QsJBGJvbGQCe32EuKGG+QsK"
    "BG1vcmWGuKGG+QsOBGJvbGQEbnVsbAA="
)
MARKED_BREAK_RELOADED_HTML = "<p><strong>bold</strong><br><strong>more</strong></p>"


def test_marks_around_a_hard_break_render_like_a_tiptap_editor_loading_the_document() -> None:
    fragment = load_fragment(base64.b64decode(MARKED_BREAK_UPDATE))
    assert to_html(fragment) == MARKED_BREAK_RELOADED_HTML
    assert to_markdown(fragment) == "**bold**\\\n**more**\n"
