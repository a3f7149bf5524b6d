"""A corpus of hostile content put into a document through the CRDT, and a check that
rendered output carries none of it as markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '"><svg onload=alert(3)>',
    "'><iframe src=javascript:alert(4)>",
    "</p><script>alert(5)</script>",
]
BAD_HREFS = [
    "javascript:alert(6)",
    " JaVaScRiPt:alert(7)",
    "java\tscript:alert(8)",
    "data:text/html,<script>alert(9)</script>",
    "vbscript:msgbox(10)",
]


def hostile_doc() -> bytes:
    """Text, attributes, element names and link marks carrying script."""
    doc = Doc()
    fragment = doc.get("default", type=XmlFragment)
    for payload in PAYLOADS:
        text = fragment.children.append(XmlElement("paragraph")).children.append(XmlText())
        text.insert(0, payload)
    links = fragment.children.append(XmlElement("paragraph")).children.append(XmlText())
    for href in BAD_HREFS:
        links.insert(len(links), "x", {"link": {"href": href}})
        links.insert(len(links), " ", None)
    links.insert(len(links), "y", {"link": {"href": '"><script>alert(11)</script>'}, "bold": {}})
    heading = fragment.children.append(
        XmlElement("heading", {"level": '1"><script>alert(12)</script>'})
    )
    heading.children.append(XmlText("h"))
    code = fragment.children.append(
        XmlElement("codeBlock", {"language": 'x"><script>alert(13)</script>'})
    )
    code.children.append(XmlText("```\n<script>alert(14)</script>\n```"))
    for name in ("script", "iframe", "svg", "img", 'p onclick="alert(15)"'):
        element = fragment.children.append(
            XmlElement(name, {"onerror": "alert(16)", "src": "javascript:alert(17)"})
        )
        element.children.append(XmlText("alert(18)"))
    listed = fragment.children.append(XmlElement("orderedList", {"start": '1" onclick="alert(19)'}))
    item = listed.children.append(XmlElement("taskItem", {"checked": '" onclick="alert(20)'}))
    item.children.append(XmlElement("paragraph")).children.append(XmlText("<b>task</b>"))
    return doc.get_update()


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def assert_inert_html(html: str) -> None:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert not {"script", "iframe", "svg", "img", "object", "embed"} & set(parser.tags)
    for name, value in parser.attrs:
        assert not name.startswith("on"), (name, value)
        if name in ("href", "src", "action", "formaction"):
            assert not re.match(r"\s*(javascript|data|vbscript):", value or "", re.I), value


def _without_code(text: str) -> str:
    """Markdown with fenced code blocks and code spans removed: their content is literal."""
    kept: list[str] = []
    fence = ""
    for line in text.split("\n"):
        bare = line.lstrip(" >-[]x0123456789.")
        if fence:
            if bare.strip() == fence or (bare.startswith(fence) and not bare.strip("`")):
                fence = ""
            continue
        match = re.match(r"(`{3,})", bare)
        if match:
            fence = match.group(1)
            continue
        kept.append(line)
    return re.sub(r"(`+)(.+?)\1", "", "\n".join(kept))


def assert_inert_markdown(text: str) -> None:
    """No raw HTML tag (other than <u>) and no link to a script URL outside code."""
    text = _without_code(text)
    unescaped_tags = re.findall(r"(?<!\\)<(?!/?u>)[a-zA-Z/!]", text)
    assert not unescaped_tags, unescaped_tags
    assert not re.search(r"\]\(\s*<?\s*(javascript|data|vbscript)", text, re.I)


class _PageCollector(_Collector):
    def __init__(self) -> None:
        super().__init__()
        self.in_script = False
        self.script_text: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        if tag == "script":
            self.scripts.append(dict(attrs))
            self.in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.script_text.append(data)


def assert_inert_page(html: str) -> None:
    """A whole page: only the site's own external scripts, no inline script, no event
    handler attributes, no script URLs, no hostile element from the document."""
    parser = _PageCollector()
    parser.feed(html)
    parser.close()
    for script in parser.scripts:
        assert (script.get("src") or "").startswith("/static/"), script
    assert not "".join(parser.script_text).strip()
    assert not {"iframe", "svg", "img", "object", "embed"} & set(parser.tags)
    for name, value in parser.attrs:
        assert not name.startswith("on"), (name, value)
        if name in ("href", "src", "action", "formaction"):
            assert not re.match(r"\s*(javascript|data|vbscript):", value or "", re.I), value
