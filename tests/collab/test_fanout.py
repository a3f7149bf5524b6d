from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from channels.layers import InMemoryChannelLayer

from collab.fanout import GroupLink


async def test_messages_queued_together_travel_as_one_batch_in_order() -> None:
    layer = InMemoryChannelLayer()
    sends = 0
    group_send = layer.group_send

    async def counting_group_send(group: str, message: dict[str, Any]) -> None:
        nonlocal sends
        sends += 1
        await group_send(group, message)

    layer.group_send = counting_group_send  # type: ignore[method-assign]
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
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
    assert sends == 1
