"""pycrdt-websocket (from PyPI, in memory) served by uvicorn on 127.0.0.1:PORT.

Run with bench/.venv-peers/bin/python. The room named PRELOAD_ROOM is loaded from
PRELOAD_FILE every time it is opened (rooms are dropped when their last client leaves),
so cold opens are comparable with the other servers."""

from __future__ import annotations

import asyncio
import os

import anyio
import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom

PRELOAD_ROOM = os.environ.get("PRELOAD_ROOM", "")
PRELOAD_FILE = os.environ.get("PRELOAD_FILE", "")


class PreloadingServer(WebsocketServer):
    async def get_room(self, name: str) -> YRoom:
        is_new = name not in self.rooms
        room = await super().get_room(name)
        # Room names are the URL path ("/<id>"); load the stored state on a cold open.
        if is_new and PRELOAD_FILE and name.strip("/") == PRELOAD_ROOM:
            room.ydoc.apply_update(await anyio.Path(PRELOAD_FILE).read_bytes())
        return room


async def main() -> None:
    async with PreloadingServer(auto_clean_rooms=True) as websocket_server:
        config = uvicorn.Config(
            ASGIServer(websocket_server),
            host="127.0.0.1",
            port=int(os.environ["PORT"]),
            loop="uvloop",
            http="httptools",
            ws="websockets",
            ws_max_size=int(os.environ.get("WS_MAX_SIZE", str(64 * 1024 * 1024))),
            lifespan="off",
            log_level="warning",
        )
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
