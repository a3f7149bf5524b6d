"""
Differences between two versions of a document: blocks are matched first (so the
block structure stays), then changed blocks are compared word by word.

Python's `difflib.SequenceMatcher` does both levels: it is in the standard library
(maintained with CPython, no new dependency), works on any sequence of hashable items
(blocks, word tokens) and gives readable, human-aligned matches. diff-match-patch is
character-based and needs its lines-to-chars trick to diff words, for no gain here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from html import escape

from documents.rendering import Block

CONTEXT_BLOCKS = 1
"""Unchanged blocks shown on each side of a change; longer unchanged runs are collapsed."""
CONTEXT_WORDS = 12
"""Unchanged words kept on each side of a change inside a long block."""
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


@dataclass(slots=True)
class BlockChange:
    """One row of a comparison: a block that is unchanged, added, removed or changed.
    `words` is set for changed blocks: `(op, text)` with op in "=", "+", "-"."""

    op: str  # "=" | "+" | "-" | "~"
    block: Block
    words: list[tuple[str, str]] | None = None


def _key(block: Block) -> tuple[object, ...]:
    shape = tuple((c.kind, c.number, c.checked) for c in block.containers)
    return (block.kind, block.level, block.language, shape, block.text)


def _matcher(a: list, b: list) -> SequenceMatcher:  # type: ignore[type-arg]
    # autojunk would treat frequent tokens ("the", empty paragraphs) as noise in long
    # sequences and produce scattered matches; the inputs here are bounded by the document.
    return SequenceMatcher(None, a, b, autojunk=False)


def _trimmed_opcodes(a: list, b: list) -> Iterator[tuple[str, int, int, int, int]]:  # type: ignore[type-arg]
    """SequenceMatcher opcodes, with the common head and tail matched first: most
    comparisons differ in a small middle, and this keeps the matcher's input small."""
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    if head:
        yield ("equal", 0, head, 0, head)
    for tag, i1, i2, j1, j2 in _matcher(
        a[head : len(a) - tail], b[head : len(b) - tail]
    ).get_opcodes():
        yield (tag, i1 + head, i2 + head, j1 + head, j2 + head)
    if tail:
        yield ("equal", len(a) - tail, len(a), len(b) - tail, len(b))


def diff_words(old: str, new: str) -> list[tuple[str, str]]:
    """`(op, text)` pieces turning `old` into `new`, word by word."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    pieces: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in _trimmed_opcodes(a, b):
        if tag == "equal":
            pieces.append(("=", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("-", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("+", "".join(b[j1:j2])))
    return [piece for piece in pieces if piece[1]]


def diff_blocks(old: list[Block], new: list[Block]) -> list[BlockChange]:
    """The rows of a comparison of two versions' blocks, in the new version's order."""
    changes: list[BlockChange] = []
    a, b = [_key(block) for block in old], [_key(block) for block in new]
    for tag, i1, i2, j1, j2 in _trimmed_opcodes(a, b):
        if tag == "equal":
            changes.extend(BlockChange("=", block) for block in new[j1:j2])
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            before, after = old[i1 + k], new[j1 + k]
            matcher = SequenceMatcher(None, before.text, after.text)
            if before.kind == after.kind and (matcher.quick_ratio() > 0.3):
                changes.append(BlockChange("~", after, diff_words(before.text, after.text)))
            else:
                changes.append(BlockChange("-", before))
                changes.append(BlockChange("+", after))
        changes.extend(BlockChange("-", block) for block in old[i1 + paired : i2])
        changes.extend(BlockChange("+", block) for block in new[j1 + paired : j2])
    return changes


def count_changes(changes: list[BlockChange]) -> tuple[int, int]:
    """Characters added and removed."""
    added = removed = 0
    for change in changes:
        if change.op == "+":
            added += len(change.block.text)
        elif change.op == "-":
            removed += len(change.block.text)
        elif change.op == "~" and change.words:
            added += sum(len(text) for op, text in change.words if op == "+")
            removed += sum(len(text) for op, text in change.words if op == "-")
    return added, removed


# HTML -------------------------------------------------------------------------------


def _block_html(change: BlockChange) -> str:
    block = change.block
    markers = []
    for c in block.containers:
        if c.kind == "ordered" and c.first:
            markers.append(f"{c.number}.")
        elif c.kind == "bullet" and c.first:
            markers.append("•")
        elif c.kind == "task" and c.first:
            markers.append("☑" if c.checked else "☐")
    depth = min(len(block.containers), 12)
    quoted = any(c.kind == "quote" for c in block.containers)
    classes = (
        f"diff-block diff-{ {'=': 'same', '+': 'ins', '-': 'del', '~': 'changed'}[change.op] }"
    )
    if quoted:
        classes += " diff-quote"
    marker = f'<span class="diff-marker">{escape(" ".join(markers))}</span> ' if markers else ""
    if change.words is not None:
        body = _words_html(change.words)
    elif change.op in "+-":
        tag = "ins" if change.op == "+" else "del"
        body = f"<{tag}>{escape(block.text, quote=False)}</{tag}>"
    else:
        body = escape(block.text, quote=False)
    if block.kind == "heading":
        inner = f"<h{block.level}>{marker}{body}</h{block.level}>"
    elif block.kind == "code":
        inner = f"<pre><code>{body}</code></pre>"
    elif block.kind == "rule":
        inner = "<hr>"
    else:
        inner = f"<p>{marker}{body}</p>"
    return f'<div class="{classes}" style="margin-left:{depth * 1.5}em">{inner}</div>'


def _words_html(words: list[tuple[str, str]]) -> str:
    out = []
    last = len(words) - 1
    for index, (op, text) in enumerate(words):
        if op == "+":
            out.append(f"<ins>{escape(text, quote=False)}</ins>")
        elif op == "-":
            out.append(f"<del>{escape(text, quote=False)}</del>")
        else:
            out.append(
                escape(_shorten(text, keep_head=index > 0, keep_tail=index < last), quote=False)
            )
    return "".join(out)


def _shorten(text: str, *, keep_head: bool, keep_tail: bool) -> str:
    """Unchanged words of a changed block, cut down to the words next to the changes."""
    tokens = _TOKEN.findall(text)
    if len(tokens) <= 4 * CONTEXT_WORDS:
        return text
    head = "".join(tokens[: 2 * CONTEXT_WORDS]) if keep_head else ""
    tail = "".join(tokens[-2 * CONTEXT_WORDS :]) if keep_tail else ""
    return f"{head} … {tail}"


def diff_html(changes: list[BlockChange]) -> str:
    """The comparison as escaped HTML; unchanged runs beyond the context are folded
    into a `<details>` element that the reader can open."""
    out: list[str] = []
    index = 0
    while index < len(changes):
        if changes[index].op != "=":
            out.append(_block_html(changes[index]))
            index += 1
            continue
        end = index
        while end < len(changes) and changes[end].op == "=":
            end += 1
        run = changes[index:end]
        head = CONTEXT_BLOCKS if index > 0 else 0
        tail = CONTEXT_BLOCKS if end < len(changes) else 0
        if len(run) <= head + tail + 1:
            out.extend(_block_html(change) for change in run)
        else:
            out.extend(_block_html(change) for change in run[:head])
            hidden = run[head : len(run) - tail]
            noun = "block" if len(hidden) == 1 else "blocks"
            out.append(
                f'<details class="diff-collapsed"><summary>{len(hidden)} unchanged {noun}'
                "</summary>" + "".join(_block_html(change) for change in hidden) + "</details>"
            )
            out.extend(_block_html(change) for change in run[len(run) - tail :])
        index = end
    return "".join(out)
