"""
Presence (cursors, names, colours): decoding awareness updates and the room's table.

The table is pycrdt's `Awareness` (the y-protocols merge rules: a higher clock wins, a
null state removes), minus the state pycrdt creates for the server itself. Ownership,
which client ids a socket may speak for, is the room's business (see rooms.py and
owners.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pycrdt import Awareness, Doc

from yjs.codec import ProtocolError, read_var_uint, write_var_uint


@dataclass(frozen=True, slots=True)
class Entry:
    client_id: int
    clock: int
    state: str
    """The state as JSON text; "null" removes the client."""


def _not_json(name: str) -> None:
    # Python reads NaN and Infinity, which JSON (and every browser's JSON.parse, so every
    # peer this state is relayed to) refuses.
    raise ValueError(f"{name} is not JSON")


def decode_entries(payload: bytes) -> list[Entry]:
    """Decode an awareness update; raise `ProtocolError` if it is malformed or if a
    state is anything but a JSON object or null."""
    count, pos = read_var_uint(payload, 0)
    # Each entry takes at least three bytes: client id, clock, empty string length.
    if count * 3 > len(payload) - pos:
        raise ProtocolError("awareness count exceeds the data")
    entries = []
    for _ in range(count):
        client_id, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        length, pos = read_var_uint(payload, pos)
        end = pos + length
        if end > len(payload):
            raise ProtocolError("truncated awareness state")
        try:
            text = bytes(payload[pos:end]).decode("utf-8")
            state: Any = json.loads(text, parse_constant=_not_json) if text else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            # RecursionError: JSON nested past Python's recursion limit, a malformed
            # frame like any other (4400), not a server error.
            raise ProtocolError("awareness state is not JSON") from None
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("awareness state is not an object")
        entries.append(Entry(client_id, clock, text or "null"))
        pos = end
    if pos != len(payload):
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def with_user(entry: Entry, user: dict[str, object]) -> Entry | None:
    """`entry` with its state's `user` set to `user`, the socket's account: others see
    who is there, not whatever name a client writes. A removal stays a removal; None if
    the state cannot be written back (nested to the recursion limit)."""
    if entry.state == "null":
        return entry
    try:
        state = json.loads(entry.state)
        state["user"] = user
        text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        return None
    return Entry(entry.client_id, entry.clock, text)


def encode_entries(entries: list[Entry]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        state = entry.state.encode()
        out += write_var_uint(entry.client_id)
        out += write_var_uint(entry.clock)
        out += write_var_uint(len(state))
        out += state
    return bytes(out)


class AwarenessTable:
    """Every client's current presence as this process knows it."""

    def __init__(self) -> None:
        self._awareness = Awareness(Doc())
        # pycrdt gives the server a presence of its own; the server is nobody's peer.
        self._awareness.remove_awareness_states([self._awareness.client_id], origin=None)

    @property
    def client_ids(self) -> list[int]:
        return list(self._awareness.states)

    def apply(self, entries: list[Entry]) -> None:
        self._awareness.apply_awareness_update(encode_entries(entries), origin=None)

    def snapshot(self) -> bytes | None:
        """All current states as one awareness update, or None when nobody is present."""
        ids = self.client_ids
        return self._awareness.encode_awareness_update(ids) if ids else None

    def remove(self, client_ids: list[int]) -> bytes | None:
        """Drop `client_ids`; return the update that tells peers they are gone."""
        present = [cid for cid in client_ids if cid in self._awareness.states]
        if not present:
            return None
        self._awareness.remove_awareness_states(present, origin=None)
        return self._awareness.encode_awareness_update(present)

    def stale(self, max_age_seconds: float, *, keep: set[int]) -> list[int]:
        """Client ids whose state was not renewed for `max_age_seconds`, except `keep`."""
        cutoff = int((time.time() - max_age_seconds) * 1000)
        meta = self._awareness.meta
        return [
            cid
            for cid in self._awareness.states
            if cid not in keep and meta.get(cid, {}).get("lastUpdated", 0) < cutoff
        ]
