"""
A room's writes on their way to the database.

Writes are appended in memory and committed by one task per room: whatever accumulated
while the previous transaction ran goes into the next one (group commit, no artificial
delay). A failed transaction keeps every write and is retried with backoff, so nothing a
client was shown is lost while the database is away.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collab import metrics
from collab.conf import conf
from collab.persistence import DocumentGone, aappend_updates

logger = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass(slots=True)
class PendingWrite:
    update: bytes | None
    """None for a write with nothing to store that still awaits its acknowledgement."""
    author_id: int | None
    member: Any = None
    """The room member (connection) that sent it, to be told when it is committed."""
    n: int | None = None
    """The number it was published under, when other processes received it already."""
    received_at: float = field(default_factory=time.monotonic)


Committed = Callable[[list[PendingWrite], int, int], None]


class Journal:
    def __init__(
        self,
        document_id: uuid.UUID,
        *,
        on_committed: Committed,
        on_gone: Callable[[], None],
    ) -> None:
        self.document_id = document_id
        self._on_committed = on_committed
        self._on_gone = on_gone
        self._pending: list[PendingWrite] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.failures = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_updates(self) -> list[bytes]:
        return [write.update for write in self._pending if write.update is not None]

    def append(self, write: PendingWrite) -> None:
        self._pending.append(write)
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until every write appended so far is committed."""
        await self._idle.wait()

    async def run(self) -> None:
        backoff = 0.05
        window = conf.COMMIT_WINDOW_SECONDS
        while True:
            await self._wake.wait()
            if window:
                # Writes that arrive meanwhile join this transaction (group commit
                # across a few milliseconds, not only across one transaction's time).
                await asyncio.sleep(window)
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                rows = [(w.update, w.author_id) for w in batch if w.update is not None]
                started = time.monotonic()
                try:
                    first, last = await aappend_updates(self.document_id, rows) if rows else (0, -1)
                except DocumentGone:
                    logger.warning(
                        "Document %s is gone; dropping its writes",
                        self.document_id,
                        extra={"document_id": self.document_id},
                    )
                    self._pending.clear()
                    self._on_gone()
                    break
                except Exception:
                    metrics.STORE_FAILURES.inc()
                    if self.failures == 0:
                        logger.exception(
                            "Storing %d updates of document %s failed; keeping them and retrying",
                            len(rows),
                            self.document_id,
                            extra={"document_id": self.document_id, "count": len(rows)},
                        )
                    self.failures += 1
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, conf.STORE_RETRY_MAX_SECONDS)
                    continue
                if self.failures:
                    logger.info(
                        "Storing updates of document %s works again after %d failures",
                        self.document_id,
                        self.failures,
                        extra={"document_id": self.document_id, "failures": self.failures},
                    )
                self.failures = 0
                backoff = 0.05
                done = time.monotonic()
                if rows:
                    metrics.COMMIT_SECONDS.observe(done - started)
                    metrics.COMMIT_LAG_SECONDS.observe(done - batch[0].received_at)
                del self._pending[: len(batch)]
                self._on_committed(batch, first, last)
            if not self._pending:
                self._idle.set()
