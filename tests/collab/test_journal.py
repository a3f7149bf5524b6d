from __future__ import annotations

import asyncio
import uuid

import pytest
from pytest_django.fixtures import Settings

from collab import journal as journal_module
from collab.journal import Journal, PendingWrite


@pytest.mark.parametrize(("window", "batches"), [(0.05, [[b"a", b"b"]]), (0.0, [[b"a"], [b"b"]])])
async def test_writes_within_the_commit_window_share_a_transaction(
    window: float,
    batches: list[list[bytes]],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.COLLAB_COMMIT_WINDOW_SECONDS = window
    committed: list[list[bytes]] = []

    async def append(
        document_id: uuid.UUID, rows: list[tuple[bytes, int | None]]
    ) -> tuple[int, int]:
        committed.append([update for update, _ in rows])
        return len(committed), len(committed)

    monkeypatch.setattr(journal_module, "aappend_updates", append)
    journal = Journal(uuid.uuid4(), on_committed=lambda *args: None, on_gone=lambda: None)
    runner = asyncio.ensure_future(journal.run())
    try:
        journal.append(PendingWrite(b"a", None))
        await asyncio.sleep(0)  # the journal wakes: it commits, or opens its window
        journal.append(PendingWrite(b"b", None))
        await asyncio.wait_for(journal.drained(), timeout=5)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert committed == batches
