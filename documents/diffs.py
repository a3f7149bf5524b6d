"""
Differences between two versions of a document: blocks are matched first (so the
block structure stays), then changed blocks are compared word by word.

Python's `difflib.SequenceMatcher` does both levels: it is in the standard library
(maintained with CPython, no new dependency), works on any sequence of hashable items
(blocks, word tokens) and gives readable, human-aligned matches. diff-match-patch is
character-based and needs its lines-to-chars trick to diff words, for no gain here.

Bounded cost: SequenceMatcher's worst case is far beyond quadratic (each longest-match
search scans every position of each token in the other side, and the searches nest: a
rewritten 32 KB paragraph took 12-50 s here, 125 s in the report that found it). So
every search here is counted before it runs (`_searched`) and stops at a budget,
`WORD_DIFF_STEPS` per block and `COMPARE_STEPS` per comparison; a block whose word diff
would cost more is shown as replaced (old text removed, new text added), and a block
sequence whose diff would cost more keeps only its common head and tail. Spaces are
junk to the word matcher, and blocks are matched on those common to both versions
first, so an edit of many scattered paragraphs (a find-and-replace over 100,000) costs
no search at all. Everything else is linear, and the HTML of a comparison is bounded
too (`DIFF_HTML_CHARS`, `BLOCK_TEXT_CHARS`, `COLLAPSED_CHARS`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from html import escape
from typing import NamedTuple

from documents.rendering import Block, collector_paused

CONTEXT_BLOCKS = 1
"""Unchanged blocks shown on each side of a change; longer unchanged runs are collapsed."""
CONTEXT_WORDS = 12
"""Unchanged words kept on each side of a change inside a long block."""
WORD_DIFF_STEPS = 1_500_000
"""Matching steps one block's word diff may take (see `_searched`); above it the block
shows as replaced. A step takes 60-180 ns here, so 0.1-0.27 s. Edits scattered over a
paragraph of 12 KB take 0.7-1.1 million steps and fit, as does any edit of a longer
one that leaves most of its start and end alone; a 32 KB paragraph edited throughout
(4-8 million) or rewritten does not, and took 12-50 s to compare before this bound."""
COMPARE_STEPS = 3_000_000
"""Matching steps one comparison may take over all its blocks and the block sequence
itself (0.2-0.55 s), so that a document with thousands of rewritten paragraphs answers
in bounded time too: once spent, the remaining changed blocks show as replaced. An
edited paragraph of a few hundred words takes a few thousand steps."""
SIMILAR = 0.3
"""Two blocks are compared word by word when at least this share of their words could
match; below it they are shown as one removed and one added."""
DIFF_HTML_CHARS = 2_000_000
"""The most HTML one comparison shows, as a version page (`rendering.PAGE_HTML_CHARS`);
the changes after it are counted, not shown."""
BLOCK_TEXT_CHARS = 20_000
"""The most characters of one piece of text a comparison shows (an added paragraph, a
removed stretch): a 32 MB paragraph must not fill the page."""
COLLAPSED_CHARS = 100_000
"""An unchanged stretch is folded with its text when it holds at most this many
characters; a longer one is only counted (its text is in the versions themselves)."""
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
"""Words, runs of spaces and single other characters. Spaces are junk to the word
matcher (`_is_space`): they match everywhere, and as match seeds they aligned unrelated
words around them ("-a +x = -b +y") and made every search scan half the other side."""


@dataclass(slots=True)
class BlockChange:
    """One row of a comparison: a block that is unchanged, added, removed or changed.
    `words` is set for changed blocks: `(op, text)` with op in "=", "+", "-"."""

    op: str  # "=" | "+" | "-" | "~"
    block: Block
    words: list[tuple[str, str]] | None = None


class OverBudget(Exception):
    """A matcher would take more steps than it was given."""


@dataclass(slots=True)
class Budget:
    """The matching steps one comparison may still take."""

    steps: int = COMPARE_STEPS


Match = tuple[int, int, int]
"""`(i, j, size)`: `a[i:i+size] == b[j:j+size]`."""


def _common_ends(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[int, int]:
    """How many items `a` and `b` share at their start, and then at their end."""
    most = min(len(a), len(b))
    head = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), most)
    ends = zip(reversed(a), reversed(b), strict=False)
    tail = next((i for i, (x, y) in enumerate(ends) if x != y or i == most - head), most - head)
    return head, tail


def _searched(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    steps: int,
    junk: Callable[[Hashable], bool] | None,
) -> tuple[list[Match], int]:
    """The matching runs `SequenceMatcher.get_matching_blocks` finds, and the steps taken;
    raises OverBudget before taking more than `steps`.

    The same recursion as difflib's (the longest match, then the ranges on either side),
    with a matcher of its own for each range: difflib keeps one index of all of `b`, and
    each search visits every position of its items in all of `b`, however small the range
    (an edit every 50 words of a 12 KB paragraph took 1.6 million steps; here 0.3 million).
    A search over a range costs, in steps, the length of its `b` part (to index it), 4 per
    item of its `a` part (difflib sets up a dict for each, about as costly) and the
    positions of those items in its `b` part, counted before the search."""
    queue = [(0, len(a), 0, len(b))]
    found: list[Match] = []
    used = 0
    while queue:
        alo, ahi, blo, bhi = queue.pop()
        part_a, part_b = a[alo:ahi], b[blo:bhi]
        # autojunk would treat frequent tokens ("the", empty paragraphs) as noise in long
        # sequences and produce scattered matches; the budget bounds the cost instead.
        # Junk never starts a match (it is not indexed, so it costs no scanning) but
        # extends the matches next to it.
        matcher = SequenceMatcher(junk, part_a, part_b, autojunk=False)
        index = matcher.b2j
        used += len(part_b) + sum(4 + len(index.get(x, ())) for x in part_a)
        if used > steps:
            raise OverBudget
        i, j, size = matcher.find_longest_match(0, len(part_a), 0, len(part_b))
        if size:
            found.append((alo + i, blo + j, size))
            if i and j:
                queue.append((alo, alo + i, blo, blo + j))
            if alo + i + size < ahi and blo + j + size < bhi:
                queue.append((alo + i + size, ahi, blo + j + size, bhi))
    found.sort()
    return found, used


def _matches(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    budget: Budget,
    limit: int,
    junk: Callable[[Hashable], bool] | None = None,
) -> list[Match]:
    """Matching runs of `a` and `b` in order. The common head and tail are matched first
    (most comparisons differ in a small middle), then the middle, with at most `limit`
    steps and never more than the budget has left; past that, raises OverBudget with the
    budget charged what was spent."""
    head, tail = _common_ends(a, b)
    matches: list[Match] = [(0, 0, head)] if head else []
    middle_a, middle_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if middle_a and middle_b:
        steps = min(limit, budget.steps)
        try:
            found, used = _searched(middle_a, middle_b, steps, junk)
        except OverBudget:
            budget.steps -= steps
            raise
        budget.steps -= used
        matches += [(i + head, j + head, n) for i, j, n in found]
    if tail:
        matches.append((len(a) - tail, len(b) - tail, tail))
    return matches


def _opcodes(matches: list[Match], n: int, m: int) -> Iterator[tuple[str, int, int, int, int]]:
    """SequenceMatcher-style opcodes of matching runs over sequences of lengths n and m."""
    i = j = 0
    for ai, bj, size in [*matches, (n, m, 0)]:
        if i < ai and j < bj:
            yield ("replace", i, ai, j, bj)
        elif i < ai:
            yield ("delete", i, ai, j, j)
        elif j < bj:
            yield ("insert", i, i, j, bj)
        if size:
            yield ("equal", ai, ai + size, bj, bj + size)
        i, j = ai + size, bj + size


def _is_space(token: Hashable) -> bool:
    return isinstance(token, str) and token.isspace()


def _kind(char: str) -> int:
    """The kind of token a character belongs to: 0 word (`\\w`), 1 space, 2 other."""
    if char.isalnum() or char == "_":
        return 0
    return 1 if char.isspace() else 2


def _starts_token(text: str, i: int) -> bool:
    """Whether a token of `_TOKEN` starts at `text[i]`: at the start, where the kind of
    character changes, and at every other character. It depends on `text[i - 1]` and
    `text[i]` alone."""
    if i == 0:
        return True
    kind = _kind(text[i])
    return kind == 2 or kind != _kind(text[i - 1])


def _common_text(old: str, new: str) -> tuple[int, int]:
    """The lengths of the longest common start and then end of two strings that end and
    begin at token boundaries of both. Compared by halving with slices, in C: an edit
    inside a long paragraph leaves only the words around it to tokenize and match."""
    most = min(len(old), len(new))
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    if low == len(old) == len(new):
        return low, 0
    # Back to a token start that both share: one whose character and the one before it
    # are in the common start (the last character may begin different tokens).
    head = low - 1
    while head > 0 and not _starts_token(old, head):
        head -= 1
    head = max(head, 0)
    low, high = 0, most - head
    while low < high:
        middle = (low + high + 1) // 2
        if old[len(old) - middle :] == new[len(new) - middle :]:
            low = middle
        else:
            high = middle - 1
    # Forward to a token start inside the common end, likewise.
    start = len(old) - low + 1
    while start < len(old) and not _starts_token(old, start):
        start += 1
    return head, len(old) - min(start, len(old))


def diff_words(old: str, new: str, budget: Budget | None = None) -> list[tuple[str, str]] | None:
    """`(op, text)` pieces turning `old` into `new`, word by word; None when the two are
    too different (below `SIMILAR`) or too costly to compare: the caller shows `old`
    removed and `new` added."""
    budget = budget if budget is not None else Budget()
    if not old or not new:
        return None if old or new else []
    head, tail = _common_text(old, new)
    a = _TOKEN.findall(old, head, len(old) - tail)
    b = _TOKEN.findall(new, head, len(new) - tail)
    if 2 * (head + tail) < SIMILAR * (len(old) + len(new)):
        # An upper bound of the share of the text that can match (as SequenceMatcher's
        # quick_ratio, counting the characters of matching words), in linear time.
        words_a = Counter(token for token in a if not token.isspace())
        common = words_a & Counter(token for token in b if not token.isspace())
        possible = head + tail + sum(len(token) * count for token, count in common.items())
        if 2 * possible < SIMILAR * (len(old) + len(new)):
            return None
    try:
        matches = _matches(a, b, budget, WORD_DIFF_STEPS, _is_space)
    except OverBudget:
        return None
    pieces: list[tuple[str, str]] = [("=", old[:head])]
    for tag, i1, i2, j1, j2 in _opcodes(matches, len(a), len(b)):
        if tag == "equal":
            pieces.append(("=", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("-", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("+", "".join(b[j1:j2])))
    pieces.append(("=", old[len(old) - tail :]))
    merged: list[tuple[str, str]] = []
    for op, text in pieces:
        if not text:
            continue
        if merged and merged[-1][0] == op == "=":
            merged[-1] = ("=", merged[-1][1] + text)
        else:
            merged.append((op, text))
    return merged


def _block_matches(a: list[Hashable], b: list[Hashable], budget: Budget) -> list[Match]:
    """Matching runs of two block sequences. Only blocks present in both can match, so
    the matcher runs on those alone: when scattered blocks changed, what is left is
    mostly the same sequence on both sides, matched as a common head and tail without
    any search. Past the budget only that head and tail match."""
    common = set(a).intersection(b)
    index_a = [i for i, key in enumerate(a) if key in common]
    index_b = [j for j, key in enumerate(b) if key in common]
    shared_a, shared_b = [a[i] for i in index_a], [b[j] for j in index_b]
    try:
        found = _matches(shared_a, shared_b, budget, budget.steps)
    except OverBudget:
        head, tail = _common_ends(shared_a, shared_b)
        found = [(0, 0, head), (len(shared_a) - tail, len(shared_b) - tail, tail)]
    # Back to positions in the whole sequences, joining pairs that are adjacent there.
    runs: list[list[int]] = []
    for fi, fj, size in found:
        for k in range(size):
            i, j = index_a[fi + k], index_b[fj + k]
            if runs and runs[-1][0] + runs[-1][2] == i and runs[-1][1] + runs[-1][2] == j:
                runs[-1][2] += 1
            else:
                runs.append([i, j, 1])
    return [(i, j, size) for i, j, size in runs]


def _key(block: Block) -> tuple[object, ...]:
    containers = block.containers
    shape = tuple([(c.kind, c.number, c.checked) for c in containers]) if containers else ()
    return (block.kind, block.level, block.language, shape, block.text)


def diff_blocks(
    old: list[Block], new: list[Block], budget: Budget | None = None
) -> list[BlockChange]:
    """The rows of a comparison of two versions' blocks, in the new version's order.
    A changed block is paired with the one it replaced when their kinds agree, and
    compared word by word within the budget (`diff_words`)."""
    with collector_paused():
        return _diff_blocks(old, new, budget if budget is not None else Budget())


def _diff_blocks(old: list[Block], new: list[Block], budget: Budget) -> list[BlockChange]:
    changes: list[BlockChange] = []
    a, b = [_key(block) for block in old], [_key(block) for block in new]
    for tag, i1, i2, j1, j2 in _opcodes(_block_matches(a, b, budget), len(a), len(b)):
        if tag == "equal":
            changes.extend(BlockChange("=", block) for block in new[j1:j2])
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            before, after = old[i1 + k], new[j1 + k]
            words = (
                diff_words(before.text, after.text, budget) if before.kind == after.kind else None
            )
            if words is not None:
                changes.append(BlockChange("~", after, words))
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


class DiffHtml(NamedTuple):
    html: str
    omitted: int
    """Changed blocks left out: the HTML reached `DIFF_HTML_CHARS` before them."""


def _text_html(text: str) -> str:
    """Escaped text, cut at `BLOCK_TEXT_CHARS` with a note of how much more there is."""
    if len(text) <= BLOCK_TEXT_CHARS:
        return escape(text, quote=False)
    more = len(text) - BLOCK_TEXT_CHARS
    return (
        escape(text[:BLOCK_TEXT_CHARS], quote=False)
        + f'<span class="diff-cut"> … {more:,} more characters</span>'
    )


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
        body = f"<{tag}>{_text_html(block.text)}</{tag}>"
    else:
        body = _text_html(block.text)
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
            out.append(f"<ins>{_text_html(text)}</ins>")
        elif op == "-":
            out.append(f"<del>{_text_html(text)}</del>")
        else:
            out.append(_text_html(_shorten(text, keep_head=index > 0, keep_tail=index < last)))
    return "".join(out)


def _shorten(text: str, *, keep_head: bool, keep_tail: bool) -> str:
    """Unchanged words of a changed block, cut down to the words next to the changes."""
    tokens = _TOKEN.findall(text)
    if len(tokens) <= 4 * CONTEXT_WORDS:
        return text
    head = "".join(tokens[: 2 * CONTEXT_WORDS]) if keep_head else ""
    tail = "".join(tokens[-2 * CONTEXT_WORDS :]) if keep_tail else ""
    return f"{head} … {tail}"


def _collapsed_html(hidden: list[BlockChange]) -> str:
    noun = "block" if len(hidden) == 1 else "blocks"
    summary = f"{len(hidden):,} unchanged {noun}"
    if sum(len(change.block.text) for change in hidden) > COLLAPSED_CHARS:
        return f'<p class="diff-collapsed">{summary}</p>'
    return (
        f'<details class="diff-collapsed"><summary>{summary}</summary>'
        + "".join(_block_html(change) for change in hidden)
        + "</details>"
    )


def diff_html(changes: list[BlockChange], max_chars: int | None = None) -> DiffHtml:
    """The comparison as escaped HTML, up to about `max_chars` (by default
    `DIFF_HTML_CHARS`); unchanged runs beyond the context are folded into a `<details>`
    element that the reader can open."""
    if max_chars is None:
        max_chars = DIFF_HTML_CHARS
    out: list[str] = []
    size = 0
    index = 0
    while index < len(changes):
        if size >= max_chars:
            omitted = sum(1 for change in changes[index:] if change.op != "=")
            return DiffHtml("".join(out), omitted)
        if changes[index].op != "=":
            piece = _block_html(changes[index])
            index += 1
        else:
            end = index
            while end < len(changes) and changes[end].op == "=":
                end += 1
            run = changes[index:end]
            head = CONTEXT_BLOCKS if index > 0 else 0
            tail = CONTEXT_BLOCKS if end < len(changes) else 0
            if len(run) <= head + tail + 1:
                piece = "".join(_block_html(change) for change in run)
            else:
                piece = (
                    "".join(_block_html(change) for change in run[:head])
                    + _collapsed_html(run[head : len(run) - tail])
                    + "".join(_block_html(change) for change in run[len(run) - tail :])
                )
            index = end
        out.append(piece)
        size += len(piece)
    return DiffHtml("".join(out), 0)
