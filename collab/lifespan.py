"""ASGI lifespan: build the channel layer at startup, store what the rooms hold before
the process exits, then take its live gauges out of the metrics the workers share."""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer

from collab import metrics
from collab.registry import registry


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Built (and channels_redis and redis imported) now rather than by the first
            # room, where it held the event loop for ~0.3 s (bench/NOTES.md).
            get_channel_layer()
            # Account changes are heard from now on, before the first socket signs in.
            await registry.accounts.ensure()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await registry.aclose_all()
            finally:
                metrics.mark_process_dead()
            await send({"type": "lifespan.shutdown.complete"})
            return
