"""
Server-side rendering of a Tiptap document (the Yjs `XmlFragment` named `default`) to
HTML, Markdown and plain text.

Everything from the document is untrusted: any editor can put arbitrary element names,
attributes and text into the CRDT. So the tree is walked node by node (never through
pycrdt's `str(fragment)`, which echoes raw names and text and segfaults on deep trees),
only known node types become tags, every string is escaped, and links keep only safe
schemes. The walk is iterative; elements nested deeper than `MAX_DEPTH` lose their
structure but keep their text, so a 30,000-deep chain renders as flat text.

Cost: everything here is linear in the document, however deep it nests. A page shows
at most `PAGE_HTML_CHARS` of a document (`html_head`); exports are whole, and a document
at the size cap (`COLLAB_MAX_DOCUMENT_BYTES`, 32 MB) converts in under a second.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from os.path import commonprefix
from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

MAX_DEPTH = 64
"""Deeper elements are flattened into their text (real documents nest a few levels)."""
PAGE_HTML_CHARS = 2_000_000
"""The most HTML of a document one page shows (a version page): a book of about 300,000
words fits whole. A document at the size cap is 32 MB of HTML and more, which takes a
browser tab seconds and hundreds of MB to lay out; the page offers the export instead."""

# Tiptap's schema order of marks, which is also the order in which ProseMirror nests them.
MARK_ORDER = ("link", "bold", "code", "italic", "strike", "underline")
MARK_TAG = {"bold": "strong", "italic": "em", "code": "code", "strike": "s", "underline": "u"}
LINK_OPEN_ATTRS = ' target="_blank" rel="noopener noreferrer nofollow"'
SAFE_SCHEMES = ("http", "https", "mailto")
TEXTBLOCKS = ("paragraph", "heading", "codeBlock")

Runs = list[tuple[str, dict[str, Any]]]
"""Text with its marks: `(text, {mark name: mark attributes})`."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector held off while a document is turned into objects.

    A walk allocates millions of small objects (events, runs, blocks) that form no
    cycles, and every 700 allocations the collector ran and traversed them again: on a
    document of 80,000 paragraphs the walk took 0.75 s with it and 0.38 s without. The
    collector runs as usual once the block ends (if it was on: another thread may have
    paused it, or a caller switched it off, and then it stays as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_fragment(state: bytes) -> XmlFragment:
    """The `default` fragment of a document rebuilt from a Yjs update."""
    doc: Doc = Doc()
    if state:
        doc.apply_update(state)
    return doc.get("default", type=XmlFragment)


def safe_href(href: object) -> str:
    """`href` when its scheme is http, https or mailto; otherwise an empty string (what
    Tiptap's own renderer emits for a disallowed URI)."""
    if not isinstance(href, str):
        return ""
    # Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
    cleaned = re.sub(r"[\x00-\x20\x7f-\x9f]", "", href)
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", cleaned)
    if match is None or match.group(1).lower() not in SAFE_SCHEMES:
        return ""
    return href.strip()


# The walk ---------------------------------------------------------------------------


@dataclass(slots=True)
class Enter:
    tag: str
    attrs: dict[str, Any]


@dataclass(slots=True)
class Exit:
    tag: str


@dataclass(slots=True)
class Text:
    runs: Runs


Event = Enter | Exit | Text


class TooLarge(Exception):
    """The document has more nodes than the caller's budget (`walk(max_nodes=...)`)."""


def _node_classes() -> tuple[type, type]:
    """pycrdt's own element and text classes, which the walk meets without wrappers."""
    doc: Doc = Doc()
    probe = doc.get("probe", type=XmlFragment)
    element = probe.children.append(XmlElement("p"))
    text = probe.children.append(XmlText())
    return type(element.integrated), type(text.integrated)


_ELEMENT, _TEXT = _node_classes()


def walk(
    fragment: XmlFragment, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None
) -> Iterator[Event]:
    """Enter/Exit/Text events of the tree in document order, without recursion. Raises
    TooLarge on meeting node number `max_nodes + 1`.

    The walk calls the nodes pycrdt wraps, inside one transaction: through the wrappers
    (`node.children`, `node.diff()`), each call builds Python objects and takes a
    transaction lease, and a 27 MB document of 80,000 paragraphs took 1.26 s to walk;
    this walk takes 0.38 s (both with the collector paused; see `collector_paused`).
    pycrdt is pinned, and tests/documents/test_render_cost.py checks this walk against
    one through the wrappers."""
    with fragment.doc.transaction() as transaction:
        txn = transaction._txn
        if max_nodes is not None and fragment.integrated.len(txn) > max_nodes:
            raise TooLarge(f"more than {max_nodes} top-level nodes")  # known without walking
        # Each stack entry: the remaining children and the tag to close (None when the
        # element was flattened or is the fragment itself).
        stack: list[tuple[Iterator[Any], str | None]] = [
            (iter(fragment.integrated.children(txn)), None)
        ]
        depth = 0
        left = -1 if max_nodes is None else max_nodes
        while stack:
            children, tag = stack[-1]
            node = next(children, None)
            if node is None:
                stack.pop()
                if tag is not None:
                    depth -= 1
                    yield Exit(tag)
                continue
            if left == 0:
                raise TooLarge(f"more than {max_nodes} nodes")
            left -= 1
            kind = type(node)
            if kind is _TEXT:
                yield Text(_runs(node.diff(txn)))
            elif kind is _ELEMENT:
                name = node.tag()
                name = name if isinstance(name, str) else ""
                if depth < max_depth:
                    depth += 1
                    yield Enter(name, dict(node.attributes(txn)))
                    stack.append((iter(node.children(txn)), name))
                else:
                    stack.append((iter(node.children(txn)), None))


def _runs(chunks: list[tuple[Any, Any]]) -> Runs:
    """Text runs of an XmlText's chunks (embeds are left out)."""
    runs: Runs = []
    for insert, attrs in chunks:
        if isinstance(insert, str) and insert:
            if not attrs or not isinstance(attrs, dict):
                runs.append((insert, {}))
            else:
                runs.append((insert, {k: v for k, v in attrs.items() if v is not None}))
    return runs


def _sorted_marks(marks: dict[str, Any]) -> list[tuple[str, Any]]:
    known = [(name, value) for name, value in marks.items() if name in MARK_ORDER]
    return sorted(known, key=lambda item: MARK_ORDER.index(item[0]))


def _number(value: object, default: int, low: int, high: int) -> int:
    try:
        number = int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default
    return min(max(number, low), high)


# HTML ---------------------------------------------------------------------------------


def to_html(fragment: XmlFragment) -> str:
    """The document as HTML, matching Tiptap's `editor.getHTML()` for known node types.
    Unknown elements become plain `<div>`/`<span>` containers (their names never appear)."""
    with collector_paused():
        return events_html(walk(fragment))


def html_head(fragment: XmlFragment, max_chars: int | None = None) -> tuple[str, bool]:
    """The document's HTML (as `to_html`) up to about `max_chars` characters (by default
    `PAGE_HTML_CHARS`), every open element closed, and whether that is the whole
    document. The walk stops there, so the cost does not grow with the rest."""
    if max_chars is None:
        max_chars = PAGE_HTML_CHARS
    events = walk(fragment)
    try:
        with collector_paused():
            return _html(events, max_chars)
    finally:
        events.close()  # ends the walk's transaction now, not when collected


def events_html(events: Iterable[Event]) -> str:
    """`to_html` of a walk's events: walking the tree is most of the cost of rendering, so
    callers that need both HTML and blocks walk once and keep the events."""
    return _html(events, None)[0]


def _html(events: Iterable[Event], max_chars: int | None) -> tuple[str, bool]:
    out: list[str] = []
    closers: list[str] = []
    inline = 0  # how many open elements are textblocks (unknown children become spans)
    size = 0
    for event in events:
        if max_chars is not None and size >= max_chars:
            out.extend(reversed(closers))
            return "".join(out), False
        if isinstance(event, Text):
            runs = event.runs
            if max_chars is not None and sum(len(text) for text, _ in runs) > max_chars - size:
                out.append(runs_html(_cut_runs(runs, max_chars - size)))
                out.extend(reversed(closers))
                return "".join(out), False
            piece = runs_html(runs)
        elif isinstance(event, Enter):
            piece, closer = _element_tags(event.tag, event.attrs, inline > 0)
            closers.append(closer)
            if event.tag in TEXTBLOCKS:
                inline += 1
        else:
            piece = closers.pop()
            if event.tag in TEXTBLOCKS:
                inline -= 1
        out.append(piece)
        size += len(piece)
    return "".join(out), True


def _cut_runs(runs: Runs, chars: int) -> Runs:
    """The first `chars` characters of the runs (all of them when they are shorter)."""
    cut: Runs = []
    for text, marks in runs:
        if chars <= 0:
            break
        cut.append((text[:chars], marks))
        chars -= len(text)
    return cut


def _element_tags(tag: str, attrs: dict[str, Any], inline: bool) -> tuple[str, str]:
    if tag == "paragraph":
        return "<p>", "</p>"
    if tag == "heading":
        level = _number(attrs.get("level"), 1, 1, 6)
        return f"<h{level}>", f"</h{level}>"
    if tag == "bulletList":
        return "<ul>", "</ul>"
    if tag == "orderedList":
        start = _number(attrs.get("start"), 1, -(2**31), 2**31)
        kind = attrs.get("type")
        extra = f' type="{kind}"' if kind in ("1", "a", "A", "i", "I") else ""
        return (f'<ol start="{start}"{extra}>' if start != 1 else f"<ol{extra}>"), "</ol>"
    if tag == "listItem":
        return "<li>", "</li>"
    if tag == "taskList":
        return '<ul data-type="taskList">', "</ul>"
    if tag == "taskItem":
        checked = attrs.get("checked") is True
        box = '<input type="checkbox" checked="checked">' if checked else '<input type="checkbox">'
        return (
            f'<li data-checked="{"true" if checked else "false"}" data-type="taskItem">'
            f"<label>{box}<span></span></label><div>",
            "</div></li>",
        )
    if tag == "codeBlock":
        language = attrs.get("language")
        if isinstance(language, str) and language:
            return f'<pre><code class="language-{escape(language)}">', "</code></pre>"
        return "<pre><code>", "</code></pre>"
    if tag == "blockquote":
        return "<blockquote>", "</blockquote>"
    if tag == "hardBreak":
        return "<br>", ""
    if tag == "horizontalRule":
        return "<hr>", ""
    return ("<span>", "</span>") if inline else ("<div>", "</div>")


def _mark_open(name: str, value: Any) -> str:
    if name == "link":
        href = safe_href(value.get("href") if isinstance(value, dict) else None)
        return f'<a{LINK_OPEN_ATTRS} href="{escape(href)}">'
    return f"<{MARK_TAG[name]}>"


def _mark_close(name: str) -> str:
    return "</a>" if name == "link" else f"</{MARK_TAG[name]}>"


def runs_html(runs: Runs) -> str:
    """Marked-up text, keeping shared outer marks open across runs like ProseMirror."""
    if len(runs) == 1 and not runs[0][1]:  # most paragraphs: one run without marks
        return escape(runs[0][0], quote=False)
    out: list[str] = []
    stack: list[tuple[str, Any]] = []
    for text, marks in runs:
        wanted = _sorted_marks(marks)
        keep = 0
        while keep < min(len(stack), len(wanted)) and stack[keep] == wanted[keep]:
            keep += 1
        out.extend(_mark_close(name) for name, _ in reversed(stack[keep:]))
        del stack[keep:]
        for name, value in wanted[keep:]:
            out.append(_mark_open(name, value))
            stack.append((name, value))
        out.append(escape(text, quote=False))
    out.extend(_mark_close(name) for name, _ in reversed(stack))
    return "".join(out)


# Blocks: the flat form that Markdown, plain text and diffs are made from ---------------


@dataclass(slots=True)
class Container:
    """A list item or quote around a block; `first` marks the item's first block."""

    kind: str  # "quote" | "bullet" | "ordered" | "task"
    group: int = 0  # which list (or quote) element, to tell adjacent lists apart
    number: int = 0
    checked: bool = False
    first: bool = False


@dataclass(slots=True)
class Block:
    kind: str  # "paragraph" | "heading" | "code" | "rule"
    containers: tuple[Container, ...] = ()
    level: int = 0
    language: str = ""
    runs: Runs = field(default_factory=list)

    @property
    def text(self) -> str:
        if len(self.runs) == 1:  # most blocks: no marks, or one mark throughout
            return self.runs[0][0]
        return "".join([text for text, _ in self.runs])


@dataclass(slots=True)
class _Open:
    tag: str
    serial: int = 0
    container: Container | None = None
    next_number: int = 1  # lists: the number of the next item
    outer: tuple[Container, ...] = ()  # the containers around this element
    inner: tuple[Container, ...] = ()  # those of the blocks inside it, but its first one


def to_blocks(fragment: XmlFragment, *, max_nodes: int | None = None) -> list[Block]:
    """The textblocks of the document in order, each with the lists and quotes around it.
    Raises TooLarge when the document has more than `max_nodes` elements and texts."""
    with collector_paused():
        return events_blocks(walk(fragment, max_nodes=max_nodes))


def events_blocks(events: Iterable[Event]) -> list[Block]:
    """`to_blocks` of a walk's events (see `events_html`).

    Linear in the events, however deep they nest: a block reuses the containers tuple
    of the element around it, and only the items that have no block yet (the innermost
    ones, which it opens) are built for it, with their `first` mark."""
    blocks: list[Block] = []
    opened: list[_Open] = []
    lists: list[_Open] = []  # the open elements whose tag ends in "List"
    unseen: list[_Open] = []  # open containers without a block yet: always the innermost
    textblocks = 0  # open textblock elements
    current: Block | None = None

    def start(kind: str, **extra: Any) -> Block:
        if unseen:
            firsts = []
            for entry in unseen:
                c = entry.container
                assert c is not None
                firsts.append(Container(c.kind, c.group, c.number, c.checked, c.kind != "quote"))
            containers = unseen[0].outer + tuple(firsts)
            unseen.clear()
        else:
            containers = opened[-1].inner if opened else ()
        block = Block(kind, containers, **extra)
        blocks.append(block)
        return block

    groups = 0
    for event in events:
        if isinstance(event, Text):
            if current is None:  # text outside any textblock (unknown containers)
                current = start("paragraph")
            current.runs.extend(event.runs)
        elif isinstance(event, Enter):
            tag, attrs = event.tag, event.attrs
            groups += 1
            entry = _Open(tag, groups)
            if tag == "orderedList":
                entry.next_number = _number(attrs.get("start"), 1, -(2**31), 2**31)
            elif tag in ("listItem", "taskItem"):
                parent = lists[-1] if lists else None
                group = parent.serial if parent is not None else 0
                if tag == "taskItem":
                    checked = attrs.get("checked") is True
                    entry.container = Container("task", group, checked=checked)
                elif parent is not None and parent.tag == "orderedList":
                    entry.container = Container("ordered", group, number=parent.next_number)
                    parent.next_number += 1
                else:
                    entry.container = Container("bullet", group)
            elif tag == "blockquote":
                entry.container = Container("quote", groups)
            elif tag == "hardBreak":
                if current is not None:
                    current.runs.append(("\n", {}))
            elif tag == "horizontalRule":
                start("rule")
                current = None
            elif tag in TEXTBLOCKS:
                if tag == "heading":
                    current = start("heading", level=_number(attrs.get("level"), 1, 1, 6))
                elif tag == "codeBlock":
                    language = attrs.get("language")
                    current = start("code", language=language if isinstance(language, str) else "")
                else:
                    current = start("paragraph")
            entry.outer = opened[-1].inner if opened else ()
            entry.inner = entry.outer
            if entry.container is not None:
                entry.inner += (entry.container,)
                unseen.append(entry)
            if tag.endswith("List"):
                lists.append(entry)
            if tag in TEXTBLOCKS:
                textblocks += 1
            opened.append(entry)
        else:
            entry = opened.pop()
            if unseen and unseen[-1] is entry:
                unseen.pop()
            if lists and lists[-1] is entry:
                lists.pop()
            if entry.tag in TEXTBLOCKS:
                textblocks -= 1
            # Unknown elements inside a textblock are inline: its text goes on.
            if event.tag in TEXTBLOCKS or not textblocks:
                current = None
    return blocks


# Markdown and plain text --------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~|])")
# Indentation without line breaks: `\s*` ran on across following empty lines from every
# line start, quadratic in a text of many line breaks (40 KB of " \n" took 36 s).
_MD_LINE_START = re.compile(r"^([^\S\n]*)([#>+=-]|\d+[.)])", re.MULTILINE)


def _md_escape(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # Most runs have no line break: then only their start can begin a line.
    if "\n" in text or _MD_LINE_START.match(text):
        text = _MD_LINE_START.sub(r"\1\\\2", text)
    return text


def _md_run(text: str, marks: dict[str, Any]) -> str:
    if not marks:
        return _md_escape(text)
    if "code" in marks:
        fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        body = f"{fence}{pad}{text}{pad}{fence}"
    else:
        body = _md_escape(text)
    # Delimiters must touch the text: move surrounding spaces outside them.
    core = body.strip()
    if not core:
        return body
    lead = body[: len(body) - len(body.lstrip())]
    trail = body[len(body.rstrip()) :]
    if "italic" in marks:
        core = f"*{core}*"
    if "bold" in marks:
        core = f"**{core}**"
    if "strike" in marks:
        core = f"~~{core}~~"
    if "underline" in marks:
        core = f"<u>{core}</u>"
    link = marks.get("link")
    if link is not None:
        href = safe_href(link.get("href") if isinstance(link, dict) else None)
        if href:
            core = f"[{core}](<{href.replace('<', '%3C').replace('>', '%3E')}>)"
    return f"{lead}{core}{trail}"


def _prefixes(containers: tuple[Container, ...], markdown: bool) -> tuple[str, str, int | None]:
    """The prefix of a block's first line and of its following lines, and the list it is
    in (the `group` of its outermost list item, None outside lists)."""
    first: list[str] = []
    rest: list[str] = []
    group = None
    for c in containers:
        if c.kind == "quote":
            mark = "> " if markdown else "  "
            first.append(mark)
            rest.append(mark)
            continue
        if group is None:
            group = c.group
        if c.kind == "ordered":
            marker = f"{c.number}. "
        elif c.kind == "task":
            marker = "- [x] " if c.checked else "- [ ] "
        else:
            marker = "- "
        # A task's "[ ] " is part of its content: following lines align after "- ".
        width = 2 if c.kind == "task" else len(marker)
        first.append(marker if c.first else " " * width)
        rest.append(" " * width)
    return "".join(first), "".join(rest), group


def _lines(blocks: list[Block], markdown: bool) -> str:
    out: list[str] = []
    previous_rest, previous_group = "", None
    # Blocks of one element share their containers tuple: its prefixes are made once.
    shape: tuple[Container, ...] | None = None
    first = rest = ""
    group: int | None = None
    for index, block in enumerate(blocks):
        if block.containers is not shape:
            shape = block.containers
            first, rest, group = _prefixes(shape, markdown)
        # Blocks of the same list are tight: no blank line between them.
        if index and (group is None or group != previous_group):
            # A blank line keeps only the quotes both blocks are in.
            out.append(commonprefix([previous_rest, rest]).rstrip() if rest else "")
        previous_rest, previous_group = rest, group
        if block.kind == "rule":
            out.append(first + "---")
            continue
        if block.kind == "code":
            text = block.text
            if markdown:
                fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
                language = re.sub(r"[^\w#+.-]", "", block.language)
                body = [fence + language, *text.split("\n"), fence]
            else:
                body = text.split("\n")
            out.append(first + body[0])
            out.extend(rest + line for line in body[1:])
            continue
        if markdown:
            text = "".join(_md_run(t, m) if t != "\n" else "\\\n" for t, m in block.runs)
            if block.kind == "heading":
                text = "#" * block.level + " " + text
        else:
            text = block.text
        lines = text.split("\n")
        out.append(first + lines[0])
        out.extend(rest + line for line in lines[1:])
    return "\n".join(out) + "\n" if out else ""


def to_markdown(fragment: XmlFragment) -> str:
    """The document as CommonMark; text is escaped so that no HTML or link comes from it."""
    with collector_paused():
        return _lines(to_blocks(fragment), markdown=True)


def to_text(fragment: XmlFragment) -> str:
    """The document as plain text: one line per block, list markers kept."""
    with collector_paused():
        return _lines(to_blocks(fragment), markdown=False)
