"""The convergence workload (Jepsen's "set" workload on a CRDT document) and its oracle.

Every edit that adds content carries a unique token, so that the end state can be
checked for each edit exactly once. Text content is made only of tokens `<...>` and
filler `~`: inserts land between tokens (never splitting one), deletes remove filler
only, formatting spans any range. Map keys and XML blocks are unique per edit. The Node
driver (converge_client.mjs) implements the same edits; both take their random choices
from the op, so a seed decides them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText

TEXT, META, BLOCKS = "text", "meta", "blocks"
MARKS = ("bold", "italic", "underline")
TOKEN = re.compile(r"<[^<>~]+>")


def declare_roots(doc: Doc) -> tuple[Text, Map, XmlFragment]:
    return doc.get(TEXT, type=Text), doc.get(META, type=Map), doc.get(BLOCKS, type=XmlFragment)


def _pick(items: list[int], r: float) -> int:
    return items[min(len(items) - 1, int(r * len(items)))]


def apply_edit(doc: Doc, op: dict[str, Any]) -> None:
    """Apply one workload edit to a pycrdt doc (the twin of `edits` in the Node driver)."""
    text, meta, blocks = declare_roots(doc)
    kind = op["op"]
    if kind == "insert":
        current = str(text)
        positions = [0] + [i for i in range(1, len(current) + 1) if current[i - 1] in ">~"]
        text.insert(_pick(positions, op["r"]), op["token"] + "~~")
    elif kind == "delete":
        fillers = [i for i, char in enumerate(str(text)) if char == "~"]
        if fillers:
            index = _pick(fillers, op["r"])
            del text[index : index + 1]
    elif kind == "format":
        n = len(text)
        if n < 2:
            return
        start = int(op["r"] * (n - 1))
        length = 1 + int(op["r2"] * min(20, n - start - 1))
        text.format(start, start + length, {op["mark"]: True})
    elif kind == "map":
        meta[op["key"]] = op["token"]
    elif kind == "xml":
        index = int(op["r"] * (len(blocks.children) + 1))
        blocks.children.insert(index, XmlElement("paragraph", None, [XmlText(op["token"])]))
    else:
        raise ValueError(f"unknown edit {kind}")


@dataclass
class Ledger:
    """Every token any client wrote, by where it must show up."""

    text: set[str] = field(default_factory=set)
    meta: dict[str, str] = field(default_factory=dict)
    blocks: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)

    def op_for(self, rng: random.Random, author: str) -> dict[str, Any]:
        """The author's next edit, numbered on from its previous one."""
        n = self.counters.get(author, 0)
        self.counters[author] = n + 1
        return self.next_op(rng, author, n)

    def next_op(self, rng: random.Random, author: str, n: int) -> dict[str, Any]:
        token = f"<{author}.{n}>"
        kind = rng.choices(("insert", "delete", "format", "map", "xml"), (45, 15, 12, 10, 18))[0]
        op: dict[str, Any] = {"op": kind, "token": token, "r": rng.random()}
        if kind == "insert":
            self.text.add(token)
        elif kind == "format":
            op.update(r2=rng.random(), mark=rng.choice(MARKS))
        elif kind == "map":
            op["key"] = f"{author}.{n}"
            self.meta[op["key"]] = token
        elif kind == "xml":
            self.blocks.add(token)
        return op


def canonical(update: bytes) -> dict[str, Any]:
    """What two replicas must agree on: formatted text runs, the map, the XML tree."""
    doc = Doc()
    doc.apply_update(update)
    text, meta, blocks = declare_roots(doc)
    return {
        "text": [(insert, dict(sorted((attrs or {}).items()))) for insert, attrs in text.diff()],
        "meta": meta.to_py(),
        "blocks": str(blocks),
    }


def missing_or_duplicated(view: dict[str, Any], ledger: Ledger) -> list[str]:
    """Problems of one replica against the ledger: tokens missing or present twice."""
    problems = []
    plain = "".join(insert for insert, _ in view["text"])
    found = TOKEN.findall(plain)
    counts: dict[str, int] = {}
    for token in found:
        counts[token] = counts.get(token, 0) + 1
    for token in sorted(ledger.text):
        if counts.get(token, 0) != 1:
            problems.append(f"text token {token} present {counts.get(token, 0)} times")
    for token in set(found) - ledger.text:
        problems.append(f"text token {token} was never written")
    for key, token in sorted(ledger.meta.items()):
        if view["meta"].get(key) != token:
            problems.append(f"map key {key} is {view['meta'].get(key)!r}, not {token}")
    for token in sorted(ledger.blocks):
        if (n := view["blocks"].count(token)) != 1:
            problems.append(f"block {token} present {n} times")
    return problems
