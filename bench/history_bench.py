"""
History benchmark: the automerge-paper trace typed into a Tiptap-shaped document (one
paragraph per line), 1,000 versions taken through the real code path (log rows with
authors, `take_version`, periodic compaction), then server-side render times of the
history list, a version page and a compare page, and bytes per version (as stored:
keyframes and deltas, see documents.history) next to the full state each one stands for.

Trace: ../shared/traces/automerge-paper.json.gz, recorded by Martin Kleppmann et al.,
published in automerge/automerge-perf, via josephg/editing-traces; CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/).

Run (PostgreSQL and Redis up, from the repository root):
    .venv/bin/python bench/history_bench.py [--versions 1000] [--repeat 15]
It creates its own test database (pytest-django's settings) and writes bench/HISTORY.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402
from pycrdt import Doc, XmlElement, XmlFragment, XmlText  # noqa: E402

TRACE = ROOT.parent / "shared" / "traces" / "automerge-paper.json.gz"


class LineDocument:
    """A pycrdt Tiptap document kept as one paragraph per line of a plain-text trace."""

    def __init__(self) -> None:
        self.doc = Doc()
        self.fragment = self.doc.get("default", type=XmlFragment)
        self.lengths: list[int] = []
        self.texts: list[XmlText] = []
        self._append_line(0, "")
        self._cursor = (0, 0)  # (paragraph, its start offset): edits are mostly local

    def _append_line(self, index: int, text: str) -> None:
        element = self.fragment.children.insert(index, XmlElement("paragraph"))
        node = element.children.append(XmlText(text))
        self.texts.insert(index, node)
        self.lengths.insert(index, len(text))

    def _locate(self, pos: int) -> tuple[int, int]:
        """Paragraph index and offset of a trace position (newlines count one each)."""
        index, start = self._cursor
        index = min(index, len(self.lengths) - 1)
        while pos < start and index > 0:
            index -= 1
            start -= self.lengths[index] + 1
        while pos > start + self.lengths[index] and index < len(self.lengths) - 1:
            start += self.lengths[index] + 1
            index += 1
        self._cursor = (index, start)
        return index, pos - start

    def insert(self, pos: int, text: str) -> None:
        for offset, char in enumerate(text):
            index, at = self._locate(pos + offset)
            if char == "\n":
                tail_length = self.lengths[index] - at
                tail = str(self.texts[index])[at:] if tail_length else ""
                if tail_length:
                    del self.texts[index][at : at + tail_length]
                    self.lengths[index] = at
                self._append_line(index + 1, tail)
            else:
                self.texts[index].insert(at, char)
                self.lengths[index] += 1

    def delete(self, pos: int, count: int) -> None:
        for _ in range(count):
            index, at = self._locate(pos)
            if at < self.lengths[index]:
                del self.texts[index][at : at + 1]
                self.lengths[index] -= 1
            else:  # the newline after this paragraph: join the next one into it
                following = str(self.texts[index + 1])
                if following:
                    self.texts[index].insert(at, following)
                del self.fragment.children[index + 1]
                del self.texts[index + 1]
                self.lengths[index] += self.lengths.pop(index + 1)

    def plain(self) -> str:
        return "\n".join(str(text) for text in self.texts)


def median_ms(run, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from collab.persistence import append_updates, compact
    from documents.history import take_version, version_doc, version_state
    from documents.models import Document, DocumentVersion

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with gzip.open(TRACE) as stream:
            trace = json.loads(stream.read())
        patches = [patch for txn in trace["txns"] for patch in txn["patches"]]
        User = get_user_model()
        alice = User.objects.create_user("alice", password="pw-alice-1")
        bob = User.objects.create_user("bob", password="pw-bob-1")
        document = Document.objects.create(owner=alice, title="automerge-paper")
        lines = LineDocument()
        every = len(patches) // args.versions
        state_vector = b"\x00"  # empty: the first row carries the initial paragraph too
        take_seconds: list[float] = []
        started = time.perf_counter()
        for number, (pos, deleted, inserted) in enumerate(patches, start=1):
            with lines.doc.transaction():
                if deleted:
                    lines.delete(pos, deleted)
                if inserted:
                    lines.insert(pos, inserted)
            if number % every == 0 or number == len(patches):
                # One log row per stretch, alternating authors, then a version.
                author = alice if (number // every) % 2 else bob
                append_updates(document.pk, [(lines.doc.get_update(state_vector), author.pk)])
                state_vector = lines.doc.get_state()
                t0 = time.perf_counter()
                take_version(document.pk)
                take_seconds.append(time.perf_counter() - t0)
                if len(take_seconds) % 10 == 0:
                    compact(document.pk)
        build_seconds = time.perf_counter() - started
        assert lines.plain() == trace["endContent"], "replay diverged from the trace"

        versions = list(DocumentVersion.objects.filter(document=document).order_by("seq"))
        storage = Storage(versions, version_state)
        latest, middle = versions[-1], versions[len(versions) // 2]
        fragment = version_doc(latest).get("default", type=XmlFragment)
        rebuilt = "\n".join(str(paragraph.children[0]) for paragraph in fragment.children)
        assert rebuilt == trace["endContent"], "the latest version does not rebuild the trace"
        deepest = max(versions, key=lambda v: storage.depth[v.pk])
        client = Client()
        client.force_login(alice)
        history_url = reverse("documents:history", args=[document.pk])
        version_url = reverse("documents:version", args=[document.pk, latest.pk])
        deepest_url = reverse("documents:version", args=[document.pk, deepest.pk])
        compare_url = reverse("documents:compare", args=[document.pk]) + f"?to={latest.pk}"
        compare_far = (
            reverse("documents:compare", args=[document.pk]) + f"?from={middle.pk}&to={latest.pk}"
        )
        for url in (history_url, version_url, deepest_url, compare_url, compare_far):
            assert client.get(url).status_code == 200, url
        results = {
            "history list (first page of 50)": median_ms(
                lambda: client.get(history_url), args.repeat
            ),
            "history list, htmx page 10": median_ms(
                lambda: client.get(history_url + "?page=10", headers={"HX-Request": "true"}),
                args.repeat,
            ),
            "version page (latest, 104,852 chars)": median_ms(
                lambda: client.get(version_url), args.repeat
            ),
            f"version page (end of the longest chain: {storage.depth[deepest.pk]} deltas)": (
                median_ms(lambda: client.get(deepest_url), args.repeat)
            ),
            "compare with previous version": median_ms(
                lambda: client.get(compare_url), args.repeat
            ),
            "compare the middle version with the latest": median_ms(
                lambda: client.get(compare_far), args.repeat
            ),
        }
        report = render_report(args, versions, storage, results, build_seconds, take_seconds)
        (ROOT / "bench" / "HISTORY.md").write_text(report)
        print(report)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


class Storage:
    """Stored bytes per version, the full state each one stands for, and chain depths."""

    def __init__(self, versions, version_state) -> None:  # type: ignore[no-untyped-def]
        self.stored = [len(bytes(v.state)) for v in versions]
        self.full = [len(version_state(v)) for v in versions]
        self.keyframes = sum(1 for v in versions if v.base_id is None)
        self.depth: dict[int, int] = {}
        for v in versions:  # ordered by seq: a base comes before its deltas
            self.depth[v.pk] = 0 if v.base_id is None else self.depth[v.base_id] + 1


def render_report(args, versions, storage, results, build_seconds, take_seconds) -> str:  # type: ignore[no-untyped-def]
    stored, full = storage.stored, storage.full
    lines = [
        "# History benchmark",
        "",
        "Command (repository root, PostgreSQL up; shared 2-core machine, other work running):",
        "",
        "    .venv/bin/python bench/history_bench.py"
        + (f" --versions {args.versions}" if args.versions != 1000 else "")
        + (f" --repeat {args.repeat}" if args.repeat != 15 else ""),
        "",
        "Document: the whole automerge-paper trace (259,778 edits, 104,852 chars; CC BY 4.0,",
        "Martin Kleppmann et al. via josephg/editing-traces) typed into the `default`",
        "XmlFragment, one paragraph per line. Versions are taken through `take_version` after",
        "each stretch of edits (log row with author, then version; compaction every 10).",
        "",
        f"- versions: {len(versions)} ({storage.keyframes} keyframes, the rest deltas)",
        f"- bytes per version as stored: mean {statistics.mean(stored):,.0f}, "
        f"median {statistics.median(stored):,.0f}, max {max(stored):,}",
        f"- all versions together: {sum(stored) / 1e6:,.2f} MB "
        f"(as full states they would be {sum(full) / 1e6:,.1f} MB; "
        f"the latest full state is {full[-1]:,} bytes)",
        f"- take_version: median {statistics.median(take_seconds) * 1000:.1f} ms, "
        f"max {max(take_seconds) * 1000:.1f} ms",
        f"- building the document and its history: {build_seconds:.0f} s",
        "",
        f"Server-side render time through Django's test client, median of {args.repeat}:",
        "",
        "| page | median |",
        "|---|---|",
    ]
    lines += [f"| {name} | {ms:.1f} ms |" for name, ms in results.items()]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
