"""ASGI lifespan: store what the rooms hold before the process exits."""

from __future__ import annotations

from typing import Any

from collab.registry import registry


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await registry.aclose_all()
            await send({"type": "lifespan.shutdown.complete"})
            return
