from __future__ import annotations

from collab.sequences import RemoteUpdate, SequenceTracker


def remote(update: bytes, at: float = 0.0) -> RemoteUpdate:
    return RemoteUpdate(update, author_id=None, received_at=at)


def test_watermark_advances_over_contiguous_rows_only() -> None:
    tracker = SequenceTracker(watermark=3)
    tracker.mark_applied(5, 6)
    assert tracker.watermark == 3 and not tracker.needs(5) and tracker.needs(4)
    tracker.mark_applied(4, 4)
    assert tracker.watermark == 6
    assert not tracker.needs(2)


def test_marker_confirms_when_every_update_arrived() -> None:
    tracker = SequenceTracker(watermark=0)
    tracker.record_remote("a", 1, remote(b"1"))
    tracker.record_remote("a", 2, remote(b"2"))
    assert tracker.confirm("a", [1, 2], first=1, last=2)
    assert tracker.watermark == 2
    assert tracker.unconfirmed_count == 0


def test_marker_for_a_lost_update_asks_for_healing() -> None:
    tracker = SequenceTracker(watermark=0)
    tracker.record_remote("a", 2, remote(b"2"))
    assert not tracker.confirm("a", [1, 2], first=1, last=2)
    assert tracker.watermark == 0
    # Server-made rows (no update numbers) are always fetched.
    assert not tracker.confirm("server", [], first=3, last=3)


def test_unconfirmed_updates_become_stale_for_adoption() -> None:
    tracker = SequenceTracker(watermark=0)
    tracker.record_remote("a", 1, remote(b"old", at=1.0))
    tracker.record_remote("b", 1, remote(b"new", at=9.0))
    assert [r.update for r in tracker.take_stale(older_than=5.0)] == [b"old"]
    assert tracker.unconfirmed_updates == [b"new"]
    tracker.reset(10)
    assert tracker.watermark == 10 and not tracker.needs(10) and tracker.needs(11)
