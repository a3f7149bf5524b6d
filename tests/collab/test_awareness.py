from __future__ import annotations

import time

import pytest

from collab.protocol import ProtocolError
from yjs.awareness import AwarenessTable, Entry, decode_entries, encode_entries


def test_entries_round_trip() -> None:
    entries = [Entry(1, 3, '{"user":{"name":"Ada","color":"#f00"}}'), Entry(2**31, 1, "null")]
    assert decode_entries(encode_entries(entries)) == entries


@pytest.mark.parametrize(
    "state",
    ['"a string"', "[1]", "{not json", "42"],
)
def test_states_that_are_not_objects_are_refused(state: str) -> None:
    with pytest.raises(ProtocolError):
        decode_entries(encode_entries([Entry(1, 1, state)]))


def test_declared_count_beyond_the_data_is_refused() -> None:
    with pytest.raises(ProtocolError):
        decode_entries(b"\xff\xff\x03\x01\x01\x00")


def test_higher_clock_wins_and_removal_is_encoded_for_peers() -> None:
    table = AwarenessTable()
    assert table.snapshot() is None  # the server has no presence of its own
    table.apply([Entry(7, 2, '{"n":"new"}')])
    table.apply([Entry(7, 1, '{"n":"old"}')])
    assert decode_entries(table.snapshot() or b"") == [Entry(7, 2, '{"n":"new"}')]
    removal = table.remove([7, 8])
    assert removal is not None
    assert decode_entries(removal) == [Entry(7, 2, "null")]
    assert table.snapshot() is None
    assert table.remove([7]) is None


def test_stale_lists_only_unrenewed_states_not_kept() -> None:
    table = AwarenessTable()
    table.apply([Entry(1, 1, "{}"), Entry(2, 1, "{}")])
    assert table.stale(60, keep=set()) == []
    time.sleep(0.01)  # age the entries by a measurable amount of wall-clock time
    assert sorted(table.stale(0.001, keep={2})) == [1]
