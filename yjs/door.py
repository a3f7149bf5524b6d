"""
The one validating door: every byte string a client sends passes here before pycrdt.

pycrdt cannot be handed untrusted bytes: declared counts make it allocate hundreds of
megabytes, and nested content overflows its decoder's stack and kills the process (see
updates.py). So bytes from a client become something pycrdt may see only here:

- `admit_update` (sync step 2 and update frames, server-side writes such as restores
  and imports): a `CheckedUpdate`, walked by `yjs.updates.check_update`;
- `admit_state_vector` (sync step 1): a `CheckedStateVector`;
- `admit_awareness` (presence): the decoded entries; pycrdt only ever sees them as the
  server encodes them again.

The functions that hand bytes to pycrdt (yjs/docs.py) refuse anything but these
types and `TrustedUpdate`, the bytes that never came from a client directly: rows of the
update log, updates other rooms of the service published, and what this server's own
pycrdt made. Each has a named way in below that says why it is trusted.

The checked types are `bytes` subclasses, so they travel everywhere bytes do (frames,
the journal, psycopg, the channel layer's msgpack) and pycrdt reads them as they are;
making one copies the payload once, which next to the walk that checked it costs
nothing (a copy of 1 MiB takes about 0.1 ms, its walk tens of milliseconds).
"""

from __future__ import annotations

import asyncio

from yjs.awareness import Entry, decode_entries
from yjs.updates import UpdateShape, check_update, decode_state_vector

LARGE_UPDATE_BYTES = 64 * 1024
"""Updates above this size are walked in a worker thread: pure Python yields the GIL
every few milliseconds there, so other sockets keep being served meanwhile."""


class CheckedUpdate(bytes):
    """A client's update that the door admitted: well formed, its counts within its
    length, its content nested at most the configured depth. Made only by
    `admit_update`."""

    shape: UpdateShape
    """What it holds per client (see `UpdateShape`), from the walk that checked it."""


class CheckedStateVector(bytes):
    """A client's state vector that the door admitted. Made only by `admit_state_vector`."""


class TrustedUpdate(bytes):
    """Update bytes that did not come from a client directly (see the functions below).
    Made only by `trusted_stored`, `trusted_peer` and `server_made`."""


Admitted = CheckedUpdate | TrustedUpdate
"""What yjs/docs.py applies to a document."""


def admit_update(data: bytes, *, max_depth: int) -> CheckedUpdate:
    """`data` as a `CheckedUpdate`; `InvalidUpdate` (close code 4400) if it is not a
    well-formed Yjs v1 update nested at most `max_depth` deep."""
    shape = check_update(data, max_depth=max_depth)
    checked = CheckedUpdate(data)
    checked.shape = shape
    return checked


async def aadmit_update(data: bytes, *, max_depth: int) -> CheckedUpdate:
    """`admit_update` for the event loop: a large update is walked in a worker thread."""
    if len(data) > LARGE_UPDATE_BYTES:
        return await asyncio.to_thread(admit_update, data, max_depth=max_depth)
    return admit_update(data, max_depth=max_depth)


def admit_state_vector(data: bytes) -> CheckedStateVector:
    """`data` as a `CheckedStateVector`; `InvalidUpdate` if it is not a well-formed state
    vector (counts within its length, client ids and clocks JavaScript-safe)."""
    decode_state_vector(data)
    return CheckedStateVector(data)


def admit_awareness(data: bytes) -> list[Entry]:
    """The entries of a client's awareness update; `ProtocolError` if it is malformed,
    if a state is not a JSON object or null, or if a client id is not JavaScript-safe.
    pycrdt never sees these bytes: the awareness table encodes the entries again."""
    return decode_entries(data)


def trusted_stored(data: bytes | memoryview) -> TrustedUpdate:
    """A row of the update log or a document's stored state. Every row came through
    this door when its client sent it (or was made by this server, see `server_made`),
    and nothing else writes the log; a stored state is what pycrdt made of such rows.
    (From a database memoryview this is the one copy the bytes needed anyway.)"""
    return TrustedUpdate(data)


def trusted_peer(data: bytes) -> TrustedUpdate:
    """An update another room of this service published on the document's group (the
    channel layer, inside the service's trust boundary like the database): that room
    admitted it through this door before it published it."""
    return TrustedUpdate(data)


def server_made(data: bytes) -> TrustedUpdate:
    """Bytes this server's own pycrdt produced (`Doc.get_update()` and the like)."""
    return TrustedUpdate(data)
