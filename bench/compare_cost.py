"""CPU time of a comparison (`diff_blocks` + `diff_html`, what the compare page and every
version compute) after an editor rewrites one paragraph of N KB (issue 12, item 4).

Two rewrites per size: new words from the paragraph's own vocabulary (most words could
match: the matcher's worst case) and from another one (few words in common). No
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
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(800)]


def paragraph(kilobytes: int, words: list[str], seed: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < kilobytes * 1024:
        out.append(rng.choice(words))
        size += len(out[-1]) + 1
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
    own, other = vocabulary(1), vocabulary(2)
    for kilobytes in sizes:
        old = paragraph(kilobytes, own, 10)
        for label, new in (
            ("same words", paragraph(kilobytes, own, 20)),
            ("other words", paragraph(kilobytes, other, 20)),
        ):
            seconds, size, shown = compare_seconds(old, new)
            print(
                f"{kilobytes} KB rewritten, {label}: {seconds:.3f} s CPU, "
                f"{size:,} characters of HTML, {shown}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [12, 16, 32])
