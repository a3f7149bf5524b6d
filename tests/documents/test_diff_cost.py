"""Comparisons cost a bounded amount of work whatever the versions hold (issue 12, item 4).

difflib's matcher is far worse than quadratic on some inputs: a rewritten 32 KB
paragraph took 50-125 s of CPU, and a document with every other paragraph edited
compared its 100,000 blocks in quadratic time. Each test here takes seconds at most now
and ran into its timeout before (pytest-timeout fails it instead of waiting minutes)."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from documents.diffs import (
    BLOCK_TEXT_CHARS,
    BlockChange,
    Budget,
    count_changes,
    diff_blocks,
    diff_html,
    diff_words,
)
from documents.rendering import Block

_letters = random.Random(0)
VOCABULARY = [
    "".join(_letters.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_letters.randint(2, 9)))
    for _ in range(800)
]


def paragraph(kilobytes: int, seed: int, vocabulary: int = 800) -> str:
    """Words drawn from one vocabulary (its first `vocabulary` words), so two paragraphs
    share most words."""
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < kilobytes * 1024:
        words.append(rng.choice(VOCABULARY[:vocabulary]))
        size += len(words[-1]) + 1
    return " ".join(words)[: kilobytes * 1024]


def block(text: str, kind: str = "paragraph") -> Block:
    return Block(kind, runs=[(text, {})])


def cpu_seconds(work, *args):  # type: ignore[no-untyped-def]
    started = time.process_time()
    result = work(*args)
    return time.process_time() - started, result


@pytest.mark.timeout(20)
def test_two_different_32_kb_paragraphs_compare_fast_and_show_as_replaced() -> None:
    # 100 words: each recurs every 100 words or so, and each search scans all of them.
    old, new = paragraph(32, 1, vocabulary=100), paragraph(32, 2, vocabulary=100)
    # Most words could match, so no similarity shortcut applies: only the work budget
    # stops the matcher.
    shared = sum((Counter(old.split()) & Counter(new.split())).values())
    assert shared > 0.9 * len(old.split())
    seconds, changes = cpu_seconds(diff_blocks, [block(old)], [block(new)])
    assert [change.op for change in changes] == ["-", "+"]
    assert seconds < 1.0
    assert diff_words(old, new) is None
    assert count_changes(changes) == (len(new), len(old))


@pytest.mark.timeout(20)
def test_an_edit_inside_a_32_kb_paragraph_is_still_shown_word_by_word() -> None:
    old = paragraph(32, 1)
    cut = old.index(" ", 16_000)
    new = old[:cut] + " brand new words" + old[cut:]
    seconds, changes = cpu_seconds(diff_blocks, [block(old)], [block(new)])
    assert seconds < 0.5
    [change] = changes
    assert change.op == "~" and change.words is not None
    assert [text for op, text in change.words if op != "="] == ["brand new words "]


@pytest.mark.timeout(30)
def test_100000_paragraphs_with_every_other_one_edited_compare_in_linear_time() -> None:
    old = [block(f"paragraph {number} says something") for number in range(100_000)]
    new = [
        block(f"paragraph {number} says something else") if number % 2 else old[number]
        for number in range(100_000)
    ]
    seconds, changes = cpu_seconds(diff_blocks, old, new)
    assert seconds < 3.0
    assert Counter(change.op for change in changes) == {"=": 50_000, "~": 50_000}
    assert all(
        change.words == [("=", f"paragraph {number} says something"), ("+", " else")]
        for number, change in enumerate(changes)
        if number % 2
    )


@pytest.mark.timeout(30)
def test_repeated_blocks_shifted_by_one_stop_at_the_budget() -> None:
    # Every search over these scans every copy of a block: 10,000 x 10,000 steps for the
    # first alone. Past the budget only the common head and tail match.
    old = [block("A"), block("B")] * 10_000
    new = [block("B"), block("A")] * 10_000
    seconds, changes = cpu_seconds(diff_blocks, old, new)
    assert seconds < 3.0
    assert [change.block.text for change in changes if change.op in "=+~"] == ["B", "A"] * 10_000


def test_the_budget_is_shared_by_all_blocks_of_a_comparison() -> None:
    texts = [paragraph(2, seed).split(" ") for seed in range(10)]
    old = [block(" ".join(words)) for words in texts]
    # Every tenth word changed: a search is needed, within its budget when there is one.
    new = [
        block(" ".join(w.upper() if n % 10 == 5 else w for n, w in enumerate(words)))
        for words in texts
    ]
    assert all(change.op == "~" for change in diff_blocks(old, new))
    spent = Budget(0)
    assert [change.op for change in diff_blocks(old, new, spent)] == ["-", "+"] * 10


def test_the_html_of_a_comparison_is_bounded() -> None:
    changes = [BlockChange("+", block(f"added {number} " + "x" * 1_000)) for number in range(5_000)]
    html, omitted = diff_html(changes, max_chars=100_000)
    assert 100_000 <= len(html) < 102_000
    assert omitted == 5_000 - html.count("<ins>")
    huge = diff_html([BlockChange("-", block("y" * 1_000_000))])
    assert len(huge.html) < BLOCK_TEXT_CHARS + 200 and "980,000 more characters" in huge.html


def test_long_unchanged_stretches_are_counted_not_sent() -> None:
    same = [block("z" * 1_000) for _ in range(1_000)]
    changes = diff_blocks([*same, block("old end")], [*same, block("new end")])
    html = diff_html(changes).html
    assert "999 unchanged blocks" in html and "<details" not in html
    assert len(html) < 10_000
