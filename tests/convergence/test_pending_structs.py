"""Regression data found by the kill -9 fault test: the update log of a document after one
server process died and its clients' edits were adopted and resent through the other.

Every edit is in the log (Yjs applies the rows once, in order, and gets them all; so does
pycrdt when it applies them twice), but pycrdt 0.14.13 applying them once in order
leaves structs pending: the loaded document lacks edits the log holds. `yjs.docs`
retries such updates; these tests hold it to that.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from pycrdt import Doc

from tests.convergence.peers import decode_state_vector
from yjs.docs import apply, build_doc
from yjs.door import trusted_stored

pytestmark = pytest.mark.convergence

ROWS = [
    # Rows of a real update log (yjs.door: what the log holds is trusted).
    trusted_stored(base64.b64decode(row))
    for row in json.loads((Path(__file__).with_name("data") / "kill9_log_rows.json").read_text())[
        "rows"
    ]
]


def state_after(*passes: list[bytes]) -> dict[int, int]:
    doc = Doc()
    for rows in passes:
        for row in rows:
            doc.apply_update(row)
    return decode_state_vector(doc.get_state())


def test_a_second_pass_integrates_what_the_first_left_pending() -> None:
    # The premise: the log holds more than one pass shows.
    assert state_after(ROWS) != state_after(ROWS, ROWS)


def test_a_room_loads_every_edit_the_log_holds() -> None:
    doc, pending = build_doc(ROWS, uuid.uuid4())
    assert decode_state_vector(doc.get_state()) == state_after(ROWS, ROWS)
    assert pending == []


def test_a_live_room_integrates_them_as_they_arrive() -> None:
    doc, pending = Doc(), []
    for row in ROWS:
        apply(doc, row, pending)
    assert decode_state_vector(doc.get_state()) == state_after(ROWS, ROWS)
    assert pending == []
