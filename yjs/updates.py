"""
Inspection of Yjs (v1) update and state-vector bytes before pycrdt sees them.

pycrdt trusts declared counts (a 7-byte update can make it allocate ~280 MB, a 5-byte
state vector ~540 MB) and its decoder recurses on nested content (a ~53 KB update of
nested `Any` arrays overflows the stack and kills the process). So every update and
state vector from a client is walked here first, in Python, with every count checked
against the bytes that remain and every nesting bounded. See ../shared/notes/
pycrdt-facts.md section 3.

Nothing here calls pycrdt: yjs/door.py turns what passes these checks into the only
bytes yjs/docs.py hands to it.

`yjs.docs.is_covered` tells compaction whether an update's structs are all integrated
in a state, because pycrdt's `Doc.get_update()` silently omits pending (not yet
integrable) structs; `diff_covered` reads pycrdt's diff for it. `check_update` answers
the same for the update it walked (`UpdateShape.covered_by`) without pycrdt decoding the
update a second time, which doubled the time a large paste held the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from yjs import codec
from yjs.codec import MAX_SAFE_INTEGER, ProtocolError, read_var_uint

# Content kinds of an Item (info & 0x1f); 0 is GC and 10 is Skip.
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_XML_ELEMENT, _XML_HOOK = 3, 5


class InvalidUpdate(ProtocolError):
    """Bytes that are not a well-formed Yjs v1 update or state vector, or are too deep."""


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def uint(self) -> int:
        try:
            value, self.pos = read_var_uint(self.data, self.pos)
        except ProtocolError as exc:
            raise InvalidUpdate(str(exc)) from None
        return value

    def count(self, min_bytes_each: int) -> int:
        """A declared number of items, refused when the remaining bytes cannot hold them."""
        number = self.uint()
        if number * min_bytes_each > self.end - self.pos:
            raise InvalidUpdate("declared count exceeds the data")
        return number

    def skip(self, length: int) -> None:
        if self.pos + length > self.end:
            raise InvalidUpdate("truncated data")
        self.pos += length

    def var_bytes(self) -> bytes:
        length = self.uint()
        start = self.pos
        self.skip(length)
        return self.data[start : self.pos]

    def string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUpdate("invalid utf-8 string") from None

    def signed_varint(self) -> None:
        byte = self.byte()
        while byte & 0x80:
            byte = self.byte()

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidUpdate("truncated data")
        value = self.data[self.pos]
        self.pos += 1
        return value


def _skip_any(reader: _Reader, max_depth: int) -> None:
    """Walk one lib0 `Any` value iteratively, refusing nesting deeper than `max_depth`."""
    # Each stack entry is the number of values still to read at that depth; objects
    # count key/value pairs and read the key when a pair starts.
    stack: list[tuple[int, bool]] = [(1, False)]
    while stack:
        remaining, is_object = stack[-1]
        if remaining == 0:
            stack.pop()
            continue
        stack[-1] = (remaining - 1, is_object)
        if is_object:
            reader.string()
        tag = reader.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            continue
        if tag == 125:
            reader.signed_varint()
        elif tag == 124:
            reader.skip(4)
        elif tag in (123, 122):
            reader.skip(8)
        elif tag == 119:
            reader.string()
        elif tag == 116:
            reader.var_bytes()
        elif tag in (118, 117):
            if len(stack) >= max_depth:
                raise InvalidUpdate("content nested too deeply")
            # A key is at least one byte and a value at least one more.
            stack.append((reader.count(2 if tag == 118 else 1), tag == 118))
        else:
            raise InvalidUpdate(f"unknown Any tag {tag}")


def _check_json(text: str, max_depth: int) -> None:
    """Bound the bracket nesting of a JSON text (Yrs parses it recursively)."""
    if text.count("[") + text.count("{") < max_depth:
        return
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth >= max_depth:
                raise InvalidUpdate("content nested too deeply")
        elif char in "]}":
            depth -= 1


def _check_content(reader: _Reader, kind: int, max_depth: int) -> int:
    """Walk an item's content; its length in clock ticks."""
    if kind == _DELETED:
        return reader.uint()
    elif kind == _JSON:
        # Legacy content (Yjs 13 writes it only back out of pre-13 documents) that Yrs
        # (pycrdt 0.14) decodes with one string more than its count, unlike Yjs: read
        # either way, the bytes after it can be taken as other items than Yrs sees,
        # hiding deep nesting from this check (tests/e2e/test_malformed_frames.py).
        raise InvalidUpdate("legacy JSON content is not accepted")
    elif kind == _BINARY:
        reader.var_bytes()
    elif kind == _STRING:
        # Yjs counts a string's length in UTF-16 code units.
        text = reader.string()
        return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2
    elif kind == _EMBED:
        _check_json(reader.string(), max_depth)
    elif kind == _FORMAT:
        reader.string()
        _check_json(reader.string(), max_depth)
    elif kind == _TYPE:
        type_ref = reader.uint()
        if type_ref > 6:
            raise InvalidUpdate(f"unknown type ref {type_ref}")
        if type_ref in (_XML_ELEMENT, _XML_HOOK):
            reader.string()
    elif kind == _ANY:
        values = reader.count(1)
        for _ in range(values):
            _skip_any(reader, max_depth)
        return values
    elif kind == _DOC:
        reader.string()
        _skip_any(reader, max_depth)
    else:
        raise InvalidUpdate(f"unknown content kind {kind}")
    return 1


def _check_id(reader: _Reader) -> None:
    if reader.uint() > MAX_SAFE_INTEGER or reader.uint() > MAX_SAFE_INTEGER:
        raise InvalidUpdate("id out of range")


def _check_delete_set(reader: _Reader, ends: dict[int, int]) -> None:
    for _ in range(reader.count(2)):
        client = reader.uint()
        for _ in range(reader.count(2)):
            end = reader.uint() + reader.uint()
            if end > ends.get(client, 0):
                ends[client] = end


@dataclass(frozen=True, slots=True)
class UpdateShape:
    """What an update holds, per client: the clock after its last struct, and the end
    of the furthest range it deletes."""

    struct_ends: dict[int, int]
    delete_ends: dict[int, int]

    def covered_by(self, state_vector: bytes) -> bool:
        """`yjs.docs.is_covered(update, state_vector)` for the update this shape was
        taken from."""
        clocks = decode_state_vector(state_vector)
        return all(clocks.get(c, 0) >= end for c, end in self.struct_ends.items()) and all(
            clocks.get(c, 0) >= end for c, end in self.delete_ends.items()
        )


def check_update(update: bytes, *, max_depth: int) -> UpdateShape:
    """Raise `InvalidUpdate` unless `update` is a well-formed Yjs v1 update whose content
    nests at most `max_depth` deep and whose counts fit its length; its shape if so."""
    reader = _Reader(update)
    struct_ends: dict[int, int] = {}
    for _ in range(reader.count(3)):
        structs = reader.count(1)
        client = reader.uint()
        clock = first = reader.uint()
        end = clock
        for _ in range(structs):
            info = reader.byte()
            kind = info & 0x1F
            if kind in (_GC, _SKIP):
                clock += reader.uint()
                if kind == _GC:
                    end = clock  # a skip is a gap in the update, not content
                continue
            if info & 0x80:
                _check_id(reader)
            if info & 0x40:
                _check_id(reader)
            if not info & 0xC0:
                if reader.uint() == 1:
                    reader.string()  # root type name
                else:
                    _check_id(reader)
                if info & 0x20:
                    reader.string()  # parent sub (map key)
            clock += _check_content(reader, kind, max_depth)
            end = clock
        if end > first and end > struct_ends.get(client, 0):
            struct_ends[client] = end
    delete_ends: dict[int, int] = {}
    _check_delete_set(reader, delete_ends)
    if reader.pos != reader.end:
        raise InvalidUpdate("trailing bytes after update")
    return UpdateShape(struct_ends, delete_ends)


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode a state vector, refusing declared sizes its bytes cannot hold."""
    try:
        return codec.decode_state_vector(state_vector)
    except ProtocolError as exc:
        raise InvalidUpdate(str(exc)) from None


def diff_covered(diff: bytes, state_vector: bytes) -> bool:
    """Given `diff`, pycrdt's `get_update(update, state_vector)` of some update, whether
    everything that update holds (structs and deletions) is integrated in a document
    with `state_vector` (see `yjs.docs.is_covered`)."""
    reader = _Reader(diff)
    if reader.uint() != 0:
        # Structs beyond the state vector: the update holds pending content.
        return False
    deleting = reader.count(2)
    if not deleting:
        # Most updates delete nothing: no need to decode the state vector, which in
        # Python costs more than pycrdt's diff (O(clients), a doc's every past session).
        return True
    clocks = decode_state_vector(state_vector)
    for _ in range(deleting):
        client = reader.uint()
        known = clocks.get(client, 0)
        for _ in range(reader.count(2)):
            clock = reader.uint()
            length = reader.uint()
            if clock + length > known:
                # A deletion of something the state has not integrated yet.
                return False
    return True
