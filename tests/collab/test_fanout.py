from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from prometheus_client import REGISTRY

from collab import fanout
from collab.fanout import GroupLink


class RecordingLayer(InMemoryChannelLayer):
    """Records every group message a link publishes, and signals each one."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.published = asyncio.Event()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.published.set()
        await super().group_send(group, message)


@asynccontextmanager
async def publishing(link: GroupLink, layer: RecordingLayer) -> AsyncIterator[None]:
    """Join and publish meanwhile, forgetting the hello every link sends on joining."""
    await link.join()
    publisher = asyncio.ensure_future(link.publish_forever())
    try:
        await asyncio.wait_for(layer.published.wait(), timeout=5)
        assert [kinds(m) for m in layer.sent] == [["room.hello"]]
        layer.sent.clear()
        layer.published.clear()
        yield
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_messages_queued_together_travel_as_one_batch_in_order() -> None:
    layer = RecordingLayer()
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
        if message["type"] == "room.update":
            received.append(message)
        if len(received) == 3:
            arrived.set()

    sender = GroupLink(layer, "document.x", origin="a", on_message=lambda m: None, stats=Counter())
    receiver = GroupLink(layer, "document.x", origin="b", on_message=on_message, stats=Counter())
    await sender.join()
    await receiver.join()
    # Published before the publisher task runs: they must leave as one group message.
    for n in range(3):
        sender.publish({"type": "room.update", "n": n})
    tasks = [
        asyncio.ensure_future(sender.publish_forever()),
        asyncio.ensure_future(receiver.receive_forever()),
        asyncio.ensure_future(sender.receive_forever()),
    ]
    try:
        await asyncio.wait_for(arrived.wait(), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [m["n"] for m in received] == [0, 1, 2]
    assert {m["origin"] for m in received} == {"a"}
    [message] = layer.sent  # with the hello sent on joining
    assert kinds(message) == ["room.hello", *["room.update"] * 3]


def fanout_count() -> float:
    return REGISTRY.get_sample_value("collab_fanout_seconds_count") or 0.0


def fanout_sum() -> float:
    return REGISTRY.get_sample_value("collab_fanout_seconds_sum") or 0.0


async def test_a_batch_is_stamped_when_published_and_timed_once_where_it_arrives() -> None:
    layer = RecordingLayer()
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
        if message["type"] == "room.update":
            received.append(message)
        if len(received) == 3:
            arrived.set()

    sender = GroupLink(layer, "document.y", origin="a", on_message=lambda m: None, stats=Counter())
    receiver = GroupLink(layer, "document.y", origin="b", on_message=on_message, stats=Counter())
    await sender.join()
    await receiver.join()
    count_before = fanout_count()
    published_after = time.time()
    for n in range(3):
        sender.publish({"type": "room.update", "n": n})
    # The sender does not read its own echo here: only the receiver may observe.
    tasks = [
        asyncio.ensure_future(sender.publish_forever()),
        asyncio.ensure_future(receiver.receive_forever()),
    ]
    try:
        await asyncio.wait_for(arrived.wait(), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    [message] = layer.sent
    assert message["type"] == "room.batch"
    assert published_after <= message["sent_at"] <= time.time()
    # One observation for the group message, not one per update in it.
    assert fanout_count() - count_before == 1


async def test_own_echoes_are_not_timed_and_the_hop_is_measured_from_the_stamp() -> None:
    layer = InMemoryChannelLayer()
    published = asyncio.Event()
    group_send = layer.group_send

    async def signalling_group_send(group: str, message: dict[str, Any]) -> None:
        await group_send(group, message)
        published.set()

    layer.group_send = signalling_group_send  # type: ignore[method-assign]
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
        received.append(message)
        arrived.set()

    link = GroupLink(layer, "document.z", origin="a", on_message=on_message, stats=Counter())
    await link.join()
    count_before, sum_before = fanout_count(), fanout_sum()
    tasks = [
        asyncio.ensure_future(link.publish_forever()),
        asyncio.ensure_future(link.receive_forever()),
    ]
    try:
        link.publish({"type": "room.update", "n": 1})
        await asyncio.wait_for(published.wait(), timeout=5)
        # Another process's message, published 0.25 s ago; it queues behind the echo
        # (channels deliver in order), so once it is handled the echo was too.
        await group_send(
            "document.z",
            {"type": "room.update", "n": 1, "origin": "b", "sent_at": time.time() - 0.25},
        )
        await asyncio.wait_for(arrived.wait(), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [m["origin"] for m in received] == ["b"]
    assert fanout_count() - count_before == 1
    assert 0.25 <= fanout_sum() - sum_before < 5


def kinds(message: dict[str, Any]) -> list[str]:
    batch = message["messages"] if message["type"] == "room.batch" else [message]
    return [item["type"] for item in batch]


async def test_a_commit_marker_rides_along_after_the_next_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "DEFER_SECONDS", 30.0)  # only an update can take it
    layer = RecordingLayer()
    link = GroupLink(layer, "document.d", origin="a", on_message=lambda m: None, stats=Counter())
    async with publishing(link, layer):
        link.publish({"type": "room.committed", "ns": [1]}, urgent=False)
        await asyncio.sleep(0)  # the publisher runs and finds nothing urgent
        assert layer.sent == []
        link.publish({"type": "room.update", "n": 2})
        await asyncio.wait_for(layer.published.wait(), timeout=5)
    [message] = layer.sent
    assert kinds(message) == ["room.update", "room.committed"]


async def test_a_marker_with_nothing_to_ride_along_with_leaves_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "DEFER_SECONDS", 0.01)
    layer = RecordingLayer()
    link = GroupLink(layer, "document.e", origin="a", on_message=lambda m: None, stats=Counter())
    async with publishing(link, layer):
        link.publish({"type": "room.committed", "ns": [1]}, urgent=False)
        await asyncio.wait_for(layer.published.wait(), timeout=5)
    assert [kinds(m) for m in layer.sent] == [["room.committed"]]


async def test_flush_sends_deferred_markers_before_a_room_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "DEFER_SECONDS", 30.0)
    layer = RecordingLayer()
    link = GroupLink(layer, "document.f", origin="a", on_message=lambda m: None, stats=Counter())
    async with publishing(link, layer):
        link.publish({"type": "room.update", "n": 1})
        link.publish({"type": "room.committed", "ns": [1]}, urgent=False)
        await asyncio.wait_for(link.flush(), timeout=5)
        assert [kind for m in layer.sent for kind in kinds(m)] == ["room.update", "room.committed"]
        await asyncio.wait_for(link.flush(), timeout=5)  # nothing queued: returns at once
