"""Rendering costs time in proportion to the document, and a page shows a bounded part of
it (issue 12, item 4)."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from documents.rendering import (
    MAX_DEPTH,
    Enter,
    Event,
    Exit,
    Text,
    TooLarge,
    html_head,
    load_fragment,
    to_blocks,
    to_html,
    to_markdown,
    walk,
)
from tests.documents.xss import hostile_doc

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "tiptap.json").read_text())


def fragment_of(build) -> XmlFragment:  # type: ignore[no-untyped-def]
    doc = Doc()
    fragment = doc.get("default", type=XmlFragment)
    with doc.transaction():
        build(fragment)
    return load_fragment(doc.get_update())


def paragraphs(container: XmlFragment | XmlElement, count: int, text: str = "p") -> None:
    for _ in range(count):
        # Inserting at the front: appending asks pycrdt for the length, quadratic here.
        container.children.insert(0, XmlElement("paragraph")).children.append(XmlText(text))


def nested(depth: int, count: int):  # type: ignore[no-untyped-def]
    def build(fragment: XmlFragment) -> None:
        container: XmlFragment | XmlElement = fragment
        for _ in range(depth):
            container = container.children.append(XmlElement("blockquote"))
        paragraphs(container, count)

    return fragment_of(build)


def cpu_seconds(work, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    work(*args)
    return time.process_time() - started


@pytest.mark.timeout(20)
def test_markdown_of_a_text_with_many_line_breaks_is_linear() -> None:
    # The line-start escape ran on over the following blank lines from every line start
    # and back: 40 KB of " \n" took 36 s.
    def build(fragment: XmlFragment) -> None:
        fragment.children.append(XmlElement("paragraph")).children.append(
            XmlText("# not a heading" + " \n" * 20_000 + "end")
        )

    fragment = fragment_of(build)
    assert cpu_seconds(to_markdown, fragment) < 1.0
    markdown = to_markdown(fragment)
    assert markdown.startswith("\\# not a heading \n \n") and markdown.endswith(" \nend\n")


@pytest.mark.timeout(60)
def test_blocks_nested_60_deep_cost_no_more_than_flat_ones() -> None:
    # Each block rebuilt the list of every container around it: 60 objects per block.
    flat, deep = nested(0, 20_000), nested(60, 20_000)
    flat_seconds = min(cpu_seconds(to_blocks, flat) for _ in range(2))
    deep_seconds = min(cpu_seconds(to_blocks, deep) for _ in range(2))
    assert deep_seconds < 2 * flat_seconds + 0.05, (deep_seconds, flat_seconds)
    blocks = to_blocks(deep)
    assert len(blocks) == 20_000 and all(len(b.containers) == 60 for b in blocks)


class _Balance(HTMLParser):
    VOID = {"br", "hr", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Balance:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    return parser


def test_html_head_stops_near_the_limit_with_every_element_closed() -> None:
    def build(fragment: XmlFragment) -> None:
        items = fragment.children.append(XmlElement("bulletList"))
        for number in range(300):
            item = items.children.insert(0, XmlElement("listItem"))
            text = item.children.append(XmlElement("paragraph")).children.append(XmlText())
            text.insert(0, f"item {number} ", {"bold": True})
            text.insert(len(text), "<plain & escaped>")

    fragment = fragment_of(build)
    whole = to_html(fragment)
    assert html_head(fragment, 10**9) == (whole, True)
    head, complete = html_head(fragment, 1_000)
    assert not complete and 1_000 <= len(head) < 1_200
    assert "".join(parsed(whole).text).startswith("".join(parsed(head).text))


def test_html_head_cuts_inside_one_huge_paragraph() -> None:
    def build(fragment: XmlFragment) -> None:
        quote = fragment.children.append(XmlElement("blockquote"))
        paragraph = quote.children.append(XmlElement("paragraph"))
        paragraph.children.append(XmlText("x" * 1_000_000))

    head, complete = html_head(fragment_of(build), 5_000)
    assert not complete and len(head) < 5_100
    assert head.endswith("x</p></blockquote>")


def test_a_node_budget_stops_the_walk() -> None:
    flat = nested(0, 100)
    with pytest.raises(TooLarge):
        to_blocks(flat, max_nodes=150)
    assert len(to_blocks(flat, max_nodes=200)) == 100
    with pytest.raises(TooLarge):
        to_blocks(nested(3, 100), max_nodes=150)  # counted inside containers too


# The walk calls pycrdt's node objects below its wrappers (documents.rendering.walk);
# this is the walk through the wrappers it replaced, to check it against.


def wrapper_walk(fragment: XmlFragment, max_depth: int = MAX_DEPTH) -> Iterator[Event]:
    with fragment.doc.transaction():
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
                runs = [
                    (insert, {k: v for k, v in (attrs or {}).items() if v is not None})
                    for insert, attrs in node.diff()
                    if isinstance(insert, str) and insert
                ]
                yield Text(runs)
            elif isinstance(node, XmlElement):
                name = node.tag if isinstance(node.tag, str) else ""
                if depth < max_depth:
                    depth += 1
                    yield Enter(name, dict(node.attributes))
                    stack.append((iter(node.children), name))
                else:
                    stack.append((iter(node.children), None))


def comparable(events: Iterator[Event]) -> list[tuple[Any, ...]]:
    # Marks and attributes come from hash maps: their order varies from call to call.
    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, Text):
            out.append(("text", [(t, sorted(m.items(), key=str)) for t, m in event.runs]))
        elif isinstance(event, Enter):
            out.append(("enter", event.tag, sorted(event.attrs.items(), key=str)))
        else:
            out.append(("exit", event.tag))
    return out


def random_tree(rng: random.Random, container: XmlFragment | XmlElement, depth: int) -> None:
    tags = ["paragraph", "heading", "bulletList", "listItem", "blockquote", "hardBreak", "x-y"]
    for _ in range(rng.randint(0, 4)):
        if rng.random() < 0.4 or depth > 6:
            text = container.children.append(XmlText())
            for _ in range(rng.randint(1, 3)):
                marks = rng.choice([None, {"bold": True}, {"link": {"href": "https://e.org"}}])
                text.insert(len(text), rng.choice(["a", "b c", "<d>"]), marks)
        else:
            element = container.children.append(XmlElement(rng.choice(tags)))
            if rng.random() < 0.3:
                element.attributes["level"] = rng.choice([1, "2", 7])
            random_tree(rng, element, depth + 1)


def test_the_walk_reads_what_pycrdts_wrappers_read() -> None:
    fragments = [load_fragment(base64.b64decode(f["update"])) for f in FIXTURES.values()]
    fragments.append(load_fragment(hostile_doc()))
    rng = random.Random(4)
    for _ in range(200):
        fragments.append(fragment_of(lambda fragment: random_tree(rng, fragment, 0)))
    for fragment in fragments:
        for depth in (MAX_DEPTH, 2):
            expected = comparable(wrapper_walk(fragment, depth))
            assert comparable(walk(fragment, max_depth=depth)) == expected
