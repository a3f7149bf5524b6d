"""Building and changing a room's pycrdt Doc without trusting pycrdt to fail cleanly."""

from __future__ import annotations

import asyncio
import logging
import uuid

from pycrdt import Doc

from collab.updates import InvalidUpdate

logger = logging.getLogger(__name__)


class ApplyFailed(Exception):
    """An update failed part way through; the doc it was applied to may be half-applied."""


def build_doc(updates: list[bytes], document_id: uuid.UUID) -> Doc:
    """A doc from stored updates, skipping (and logging) any that does not decode."""
    doc = Doc()
    for update in updates:
        try:
            doc.apply_update(update)
        except ValueError:
            logger.error("A stored update of document %s does not decode; skipped", document_id)
    return doc


def apply(doc: Doc, update: bytes) -> None:
    """Apply an update; `InvalidUpdate` if it does not decode (the doc is then
    unchanged, as pycrdt decodes before it integrates), `ApplyFailed` if it failed part
    way (the doc may be half-applied and must be rebuilt)."""
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
