"""Building and changing a room's pycrdt Doc without trusting pycrdt to fail cleanly, or
to integrate what it keeps pending.

pycrdt 0.14.13 keeps an update whose dependencies have not arrived as pending, but does
not always integrate it once they do: a log applied once in order can lack edits that a
second pass finds (tests/convergence/test_pending_structs.py holds such a log). So every
doc here comes with the list of updates it has not fully integrated yet, and those are
applied again whenever a later update moves the doc's state vector.

This module and `AwarenessTable` are where the service hands bytes to pycrdt (documents/
history.py and rendering.py read stored versions only). Every function here takes only
bytes that came through the door (yjs/door.py) or never came from a client, and
refuses anything else with `TypeError`: a new path that forgets the door fails loudly
instead of reaching pycrdt's decoder (tests/collab/test_door.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from pycrdt import Doc, get_update, merge_updates

from yjs.door import Admitted, CheckedStateVector, CheckedUpdate, TrustedUpdate
from yjs.updates import InvalidUpdate, diff_covered

logger = logging.getLogger(__name__)


class ApplyFailed(Exception):
    """An update failed part way through; the doc it was applied to may be half-applied."""


def _admitted(update: Admitted) -> None:
    # type() rather than isinstance(): one check per apply on the hot path.
    if type(update) is not CheckedUpdate and type(update) is not TrustedUpdate:
        raise TypeError(
            f"{type(update).__name__} handed to pycrdt without passing the door (yjs/door.py)"
        )


def apply_once(doc: Doc, update: Admitted) -> None:
    """Apply an update; `InvalidUpdate` if it does not decode (the doc is then
    unchanged, as pycrdt decodes before it integrates), `ApplyFailed` if it failed part
    way (the doc may be half-applied and must be rebuilt)."""
    _admitted(update)
    try:
        doc.apply_update(update)
    except ValueError as exc:
        raise InvalidUpdate(f"update rejected: {exc}") from None
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit):
        raise
    except BaseException as exc:
        # RuntimeError after partial integration, or pyo3's PanicException (a
        # BaseException): either way the doc can no longer be trusted.
        raise ApplyFailed(repr(exc)) from None


SHAPE_ABOVE_BYTES = 64 * 1024
"""From this size on, an update's shape tells whether it is covered faster than pycrdt's
diff: that decodes the whole update again (tens of milliseconds for a big paste) while the
shape check decodes only the state vector, in Python (microseconds per client)."""


def is_covered(update: Admitted, state_vector: bytes) -> bool:
    """Whether everything `update` holds (structs and deletions) is integrated in a
    document with `state_vector`, so that a row holding it may be dropped after its
    content is folded into that document's `get_update()` (which silently omits pending
    structs), or a reader's write be acknowledged as holding nothing new."""
    if type(update) is CheckedUpdate and len(update) >= SHAPE_ABOVE_BYTES:
        return update.shape.covered_by(state_vector)
    _admitted(update)
    return diff_covered(get_update(update, state_vector), state_vector)


def update_since(doc: Doc, state_vector: CheckedStateVector) -> bytes:
    """What `doc` holds beyond a client's state vector (the reply to its sync step 1)."""
    if type(state_vector) is not CheckedStateVector:
        raise TypeError("a state vector handed to pycrdt without passing the door")
    return doc.get_update(state_vector)


def merge(updates: list[Admitted]) -> bytes:
    """One update holding all of `updates` (every one applied to a room's doc already)."""
    for update in updates:
        _admitted(update)
    return merge_updates(*updates)


def apply(doc: Doc, update: Admitted, pending: list[Admitted]) -> None:
    """Apply `update` and keep `pending` (the updates `doc` holds but has not fully
    integrated) current, retrying them when the update moved the state vector."""
    before = doc.get_state()
    apply_once(doc, update)
    after = doc.get_state()
    if not is_covered(update, after):
        pending.append(update)
    elif pending and after != before:
        retry_pending(doc, pending)


def retry_pending(doc: Doc, pending: list[Admitted]) -> None:
    """Apply the pending updates again until they are integrated or stop making
    progress (their dependencies really are missing)."""
    while pending:
        before = doc.get_state()
        for update in pending:
            apply_once(doc, update)
        state = doc.get_state()
        pending[:] = [update for update in pending if not is_covered(update, state)]
        if state == before:
            return


def build_doc(
    updates: list[Admitted],
    document_id: uuid.UUID,
    *,
    state_first: bool = False,
    skipped: list[Admitted] | None = None,
) -> tuple[Doc, list[Admitted]]:
    """A doc from stored updates and the ones it could not integrate (their dependencies
    are missing), skipping and logging any update that does not apply (and adding it to
    `skipped`, when given). Both lists hold the very objects passed in `updates`.

    `state_first`: the first update is a document's merged state, from `get_update()`,
    which never holds pending structs; checking it would decode it once more, a third of
    the time a large document takes to load."""
    doc = Doc()
    pending: list[Admitted] = []
    for index, update in enumerate(updates):
        try:
            apply_once(doc, update)
        except (InvalidUpdate, ApplyFailed):
            logger.error(
                "A stored update of document %s does not apply; skipped",
                document_id,
                extra={"document_id": document_id},
            )
            if skipped is not None:
                skipped.append(update)
            continue
        if index > 0 or not state_first:
            pending.append(update)
    # One check at the end instead of one per update: loading is the bulk case.
    state = doc.get_state()
    pending[:] = [update for update in pending if not is_covered(update, state)]
    retry_pending(doc, pending)
    return doc, pending
