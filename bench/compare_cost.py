"""CPU time of a comparison (`diff_blocks` + `diff_html`, what the compare page and every
version compute) after an editor rewrites one paragraph of N KB (issue 12, item 4).

Three rewrites per size: words drawn like prose (2,000 words, the most frequent ones far
more often: Zipf's law), from a vocabulary of 100 (every word recurs every hundred: close
to the matcher's worst case), and a text of 800 words rewritten with 800 others. No
database needed:

    .venv/bin/python bench/compare_cost.py 12 16 32
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from documents.diffs import diff_blocks, diff_html  # noqa: E402
from documents.rendering import Block  # noqa: E402


def vocabulary(seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(2000)]


def paragraph(kilobytes: int, words: list[str], seed: int, zipf: bool = False) -> str:
    rng = random.Random(seed)
    weights = [1 / rank for rank in range(1, len(words) + 1)] if zipf else None
    out: list[str] = []
    size = 0
    while size < kilobytes * 1024:
        out.extend(rng.choices(words, weights, k=64))
        size += sum(len(word) + 1 for word in out[-64:])
    return " ".join(out)[: kilobytes * 1024]


def compare_seconds(old: str, new: str) -> tuple[float, int, str]:
    before = [Block("paragraph", runs=[("An unchanged first paragraph.", {})])]
    started = time.process_time()
    changes = diff_blocks(
        [*before, Block("paragraph", runs=[(old, {})])],
        [*before, Block("paragraph", runs=[(new, {})])],
    )
    html = diff_html(changes)
    seconds = time.process_time() - started
    shown = "word by word" if any(change.op == "~" for change in changes) else "replaced"
    return seconds, len(getattr(html, "html", html)), shown


def main(sizes: list[int]) -> None:
    prose = vocabulary(1)
    small, own, other = prose[:100], prose[:800], vocabulary(2)[:800]
    for kilobytes in sizes:
        for label, old, new in (
            (
                "prose-like words",
                paragraph(kilobytes, prose, 10, zipf=True),
                paragraph(kilobytes, prose, 20, zipf=True),
            ),
            ("100 words", paragraph(kilobytes, small, 10), paragraph(kilobytes, small, 20)),
            ("other words", paragraph(kilobytes, own, 10), paragraph(kilobytes, other, 20)),
        ):
            seconds, size, shown = compare_seconds(old, new)
            print(
                f"{kilobytes} KB rewritten, {label}: {seconds:.3f} s CPU, "
                f"{size:,} characters of HTML, {shown}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [12, 16, 32])
