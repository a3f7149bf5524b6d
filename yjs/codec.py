"""
lib0 encoding as Yjs v1 uses it: variable-length unsigned integers, state vectors and
delete sets. Every decoder checks each declared count against the bytes that remain and
raises `ProtocolError`, never IndexError or an allocation the bytes cannot back.
"""

from __future__ import annotations

MAX_SAFE_INTEGER = 2**53 - 1
"""lib0 numbers are JavaScript-safe integers."""

Ranges = list[tuple[int, int]]
"""Sorted, disjoint, non-adjacent `[start, end)` clock ranges of one client."""


class ProtocolError(ValueError):
    """Bytes from a peer that the Yjs protocol (or this server's framing) does not allow."""


def read_var_uint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a lib0 varuint at `pos`; return it and the position after it."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtocolError("truncated varuint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift == 49:
            # A client id above 2^53 - 1 cannot be held exactly by a JavaScript peer.
            # Seven bytes carry 49 bits, so the eighth is the last and carries at most 4
            # more. (Only reached by numbers of 2^49 and more: no cost on the common path.)
            if pos >= end:
                raise ProtocolError("truncated varuint")
            byte = data[pos]
            if byte > 0x0F:
                raise ProtocolError("varuint above 2^53 - 1")
            return result | (byte << 49), pos + 1


def write_var_uint(number: int) -> bytes:
    """Encode a lib0 varuint."""
    if number < 0:
        raise ValueError("varuints are unsigned")
    out = bytearray()
    while number > 0x7F:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    out.append(number)
    return bytes(out)


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """A length-prefixed byte string at `pos`, and the position after it."""
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("truncated payload")
    return data[pos:end], end


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def _count(data: bytes | memoryview, pos: int, min_bytes_each: int) -> tuple[int, int]:
    """A declared number of items, refused when the remaining bytes cannot hold them."""
    number, pos = read_var_uint(data, pos)
    if number * min_bytes_each > len(data) - pos:
        raise ProtocolError("declared count exceeds the data")
    return number, pos


def decode_state_vector(data: bytes | memoryview) -> dict[int, int]:
    """A state vector (`client → clock`); the whole of `data` must be one."""
    clients, pos = _count(data, 0, 2)
    clocks: dict[int, int] = {}
    for _ in range(clients):
        client, pos = read_var_uint(data, pos)
        clocks[client], pos = read_var_uint(data, pos)
    if pos != len(data):
        raise ProtocolError("trailing bytes after state vector")
    return clocks


def encode_state_vector(clocks: dict[int, int]) -> bytes:
    out = bytearray(write_var_uint(len(clocks)))
    for client, clock in clocks.items():
        out += write_var_uint(client)
        out += write_var_uint(clock)
    return bytes(out)


def merge_ranges(ranges: Ranges) -> Ranges:
    """`ranges` sorted, with overlapping and adjacent ones joined and empty ones dropped."""
    out: Ranges = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def subtract_ranges(ranges: Ranges, taken: Ranges) -> Ranges:
    """The parts of `ranges` outside `taken` (both sorted and merged)."""
    out: Ranges = []
    index = 0
    for start, end in ranges:
        while index < len(taken) and taken[index][1] <= start:
            index += 1
        cursor, probe = start, index
        while probe < len(taken) and taken[probe][0] < end:
            if taken[probe][0] > cursor:
                out.append((cursor, taken[probe][0]))
            cursor = max(cursor, taken[probe][1])
            probe += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def decode_delete_set(data: bytes | memoryview, pos: int = 0) -> dict[int, Ranges]:
    """A Yjs v1 delete set (`client, count, (clock, length)*` per client) starting at
    `pos` and running to the end of `data`, with each client's ranges merged."""
    clients, pos = _count(data, pos, 2)
    result: dict[int, Ranges] = {}
    for _ in range(clients):
        client, pos = read_var_uint(data, pos)
        count, pos = _count(data, pos, 2)
        ranges = result.setdefault(client, [])
        for _ in range(count):
            clock, pos = read_var_uint(data, pos)
            length, pos = read_var_uint(data, pos)
            ranges.append((clock, clock + length))
    if pos != len(data):
        raise ProtocolError("trailing bytes after delete set")
    return {client: merge_ranges(ranges) for client, ranges in result.items() if ranges}


def encode_delete_set(delete_set: dict[int, Ranges]) -> bytes:
    out = bytearray()
    clients = [(client, ranges) for client, ranges in delete_set.items() if ranges]
    out += write_var_uint(len(clients))
    for client, ranges in clients:
        out += write_var_uint(client)
        out += write_var_uint(len(ranges))
        for start, end in ranges:
            out += write_var_uint(start)
            out += write_var_uint(end - start)
    return bytes(out)
