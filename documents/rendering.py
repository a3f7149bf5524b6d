"""
Server-side rendering of a Tiptap document (the Yjs `XmlFragment` named `default`) to
HTML, Markdown and plain text.

Everything from the document is untrusted: any editor can put arbitrary element names,
attributes and text into the CRDT. So the tree is walked node by node (never through
pycrdt's `str(fragment)`, which echoes raw names and text and segfaults on deep trees),
only known node types become tags, every string is escaped, and links keep only safe
schemes. The walk is iterative; elements nested deeper than `MAX_DEPTH` lose their
structure but keep their text, so a 30,000-deep chain renders as flat text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from os.path import commonprefix
from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

MAX_DEPTH = 64
"""Deeper elements are flattened into their text (real documents nest a few levels)."""

# Tiptap's schema order of marks, which is also the order in which ProseMirror nests them.
MARK_ORDER = ("link", "bold", "code", "italic", "strike", "underline")
MARK_TAG = {"bold": "strong", "italic": "em", "code": "code", "strike": "s", "underline": "u"}
LINK_OPEN_ATTRS = ' target="_blank" rel="noopener noreferrer nofollow"'
SAFE_SCHEMES = ("http", "https", "mailto")
TEXTBLOCKS = ("paragraph", "heading", "codeBlock")

Runs = list[tuple[str, dict[str, Any]]]
"""Text with its marks: `(text, {mark name: mark attributes})`."""


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


def walk(fragment: XmlFragment, *, max_depth: int = MAX_DEPTH) -> Iterator[Event]:
    """Enter/Exit/Text events of the tree in document order, without recursion."""
    with fragment.doc.transaction():
        # Each stack entry: the remaining children and the tag to close (None when the
        # element was flattened or is the fragment itself).
        stack: list[tuple[Iterator[Any], str | None]] = [(iter(fragment.children), None)]
        depth = 0
        while stack:
            children, tag = stack[-1]
            node = next(children, None)
            if node is None:
                stack.pop()
                if tag is not None:
                    depth -= 1
                    yield Exit(tag)
                continue
            if isinstance(node, XmlText):
                yield Text(_runs(node))
            elif isinstance(node, XmlElement):
                name = node.tag if isinstance(node.tag, str) else ""
                if depth < max_depth:
                    depth += 1
                    yield Enter(name, dict(node.attributes))
                    stack.append((iter(node.children), name))
                else:
                    stack.append((iter(node.children), None))


def _runs(node: XmlText) -> Runs:
    runs: Runs = []
    for insert, attrs in node.diff():
        if isinstance(insert, str) and insert:
            marks = attrs if isinstance(attrs, dict) else {}
            runs.append((insert, {k: v for k, v in marks.items() if v is not None}))
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
    return events_html(walk(fragment))


def events_html(events: Iterable[Event]) -> str:
    """`to_html` of a walk's events: walking the tree is most of the cost of rendering, so
    callers that need both HTML and blocks walk once and keep the events."""
    out: list[str] = []
    closers: list[str] = []
    inline = 0  # how many open elements are textblocks (unknown children become spans)
    for event in events:
        if isinstance(event, Text):
            out.append(runs_html(event.runs))
        elif isinstance(event, Enter):
            opener, closer = _element_tags(event.tag, event.attrs, inline > 0)
            out.append(opener)
            closers.append(closer)
            if event.tag in TEXTBLOCKS:
                inline += 1
        else:
            out.append(closers.pop())
            if event.tag in TEXTBLOCKS:
                inline -= 1
    return "".join(out)


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
        return "".join(text for text, _ in self.runs)


@dataclass(slots=True)
class _Open:
    tag: str
    serial: int = 0
    container: Container | None = None
    next_number: int = 1  # lists: the number of the next item
    seen_block: bool = False  # items: a block of this item was already emitted


def to_blocks(fragment: XmlFragment) -> list[Block]:
    """The textblocks of the document in order, each with the lists and quotes around it."""
    return events_blocks(walk(fragment))


def events_blocks(events: Iterable[Event]) -> list[Block]:
    """`to_blocks` of a walk's events (see `events_html`)."""
    blocks: list[Block] = []
    opened: list[_Open] = []
    current: Block | None = None

    def start(kind: str, **extra: Any) -> Block:
        containers = []
        for entry in opened:
            if entry.container is None:
                continue
            first = not entry.seen_block
            entry.seen_block = True
            c = entry.container
            containers.append(
                Container(c.kind, c.group, c.number, c.checked, first and c.kind != "quote")
            )
        block = Block(kind, tuple(containers), **extra)
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
            if tag in ("bulletList", "taskList"):
                pass
            elif tag == "orderedList":
                entry.next_number = _number(attrs.get("start"), 1, -(2**31), 2**31)
            elif tag in ("listItem", "taskItem"):
                parent = next((o for o in reversed(opened) if o.tag.endswith("List")), None)
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
            opened.append(entry)
        else:
            opened.pop()
            # Unknown elements inside a textblock are inline: its text goes on.
            inside_textblock = any(o.tag in TEXTBLOCKS for o in opened)
            if event.tag in TEXTBLOCKS or not inside_textblock:
                current = None
    return blocks


# Markdown and plain text --------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~|])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])", re.MULTILINE)


def _md_escape(text: str) -> str:
    return _MD_LINE_START.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", text))


def _md_run(text: str, marks: dict[str, Any]) -> str:
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


def _prefixes(block: Block, markdown: bool) -> tuple[str, str]:
    """The prefix of the block's first line and of its following lines."""
    first, rest = "", ""
    for c in block.containers:
        if c.kind == "quote":
            mark = "> " if markdown else "  "
            first, rest = first + mark, rest + mark
            continue
        if c.kind == "ordered":
            marker = f"{c.number}. "
        elif c.kind == "task":
            marker = "- [x] " if c.checked else "- [ ] "
        else:
            marker = "- "
        # A task's "[ ] " is part of its content: following lines align after "- ".
        width = 2 if c.kind == "task" else len(marker)
        first += marker if c.first else " " * width
        rest += " " * width
    return first, rest


def _same_list(a: Block, b: Block) -> bool:
    """Both blocks sit in the same list: no blank line between them (a tight list)."""
    lists_a = [c.group for c in a.containers if c.kind != "quote"]
    lists_b = [c.group for c in b.containers if c.kind != "quote"]
    return bool(lists_a and lists_b) and lists_a[0] == lists_b[0]


def _lines(blocks: list[Block], markdown: bool) -> str:
    out: list[str] = []
    previous: Block | None = None
    for block in blocks:
        first, rest = _prefixes(block, markdown)
        if previous is not None and not _same_list(previous, block):
            # A blank line keeps only the quotes both blocks are in.
            out.append(commonprefix([_prefixes(previous, markdown)[1], rest]).rstrip())
        previous = block
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
    return _lines(to_blocks(fragment), markdown=True)


def to_text(fragment: XmlFragment) -> str:
    """The document as plain text: one line per block, list markers kept."""
    return _lines(to_blocks(fragment), markdown=False)
