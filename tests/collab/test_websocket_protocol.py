"""The uvicorn protocol the servers run (collab/websocket_protocol.py), driven through a
transport that behaves like uvloop's: it delivers reads of up to 256 KiB while reading is
not paused. An application that stops asking for frames (a throttled consumer) must stop
the reads, keep only a bounded number of parsed frames, get every frame in order once it
reads again, and not lose the socket to a keepalive deadline meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from collab.websocket_protocol import QUEUE_LIMIT, SLICE_BYTES, WebSocketProtocol

READ_SIZE = 256 * 1024
"""What uvloop (and asyncio) read from a socket at a time."""
QUEUE_BOUND = QUEUE_LIMIT + SLICE_BYTES // 6
"""Most messages parsed ahead of the application: the smallest client frame is 6 bytes."""


class Transport(asyncio.Transport):
    """Delivers `incoming` to the protocol in reads of READ_SIZE, as long as it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: WebSocketProtocol | None = None
        self.incoming = bytearray()
        self.reading = True
        self.written: list[bytes] = []
        self.closing = False
        self.closed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self.incoming += data
        self.pump()

    def pump(self) -> None:
        while self.reading and self.incoming and not self.closing:
            assert self.protocol is not None
            read = bytes(self.incoming[:READ_SIZE])
            del self.incoming[:READ_SIZE]
            self.protocol.data_received(read)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        asyncio.get_running_loop().call_soon(self.pump)

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closing = True
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


class Throttled:
    """An ASGI app that accepts, then reads nothing until `release` is set."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.accepted = asyncio.Event()
        self.release = asyncio.Event()
        self.done = asyncio.Event()
        self.finished = asyncio.Event()
        self.ended_with: dict[str, Any] | None = None
        self.received: list[bytes] = []
        self.most_queued = 0
        self.protocol: WebSocketProtocol | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.accepted.set()
        await self.release.wait()
        while True:
            assert self.protocol is not None
            self.most_queued = max(self.most_queued, self.protocol.queue.qsize())
            message = await receive()
            if message["type"] != "websocket.receive":
                self.ended_with = dict(message)
                self.finished.set()
                return
            self.received.append(message["bytes"])
            if len(self.received) == self.expect:
                self.done.set()


async def open_socket(
    app: Throttled, **options: Any
) -> tuple[WebSocketProtocol, Transport, ClientProtocol]:
    config = Config(app=app, ws=WebSocketProtocol, log_config=None, **options)
    config.load()
    protocol = WebSocketProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    app.protocol = protocol
    transport = Transport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws"))
    client.send_request(client.connect())
    transport.feed(b"".join(client.data_to_send()))
    async with asyncio.timeout(5):
        await app.accepted.wait()
    client.receive_data(b"".join(transport.written))  # the 101 response
    transport.written.clear()
    return protocol, transport, client


def frames(client: ClientProtocol, count: int) -> bytes:
    """`count` of the smallest frames a client can send (4-byte payloads, 10 bytes)."""
    for index in range(count):
        client.send_binary(index.to_bytes(4, "big"))
    return b"".join(client.data_to_send())


async def test_a_client_the_application_does_not_read_is_held_back_with_a_bounded_queue() -> None:
    count = 100_000  # 1 MB: four reads of 256 KiB
    app = Throttled(expect=count)
    protocol, transport, client = await open_socket(app, ws_ping_interval=None)
    transport.feed(frames(client, count))
    for _ in range(20):
        await asyncio.sleep(0)  # whatever was scheduled runs: nothing may read on
    # uvicorn alone parses the whole read: 26,000 messages (6 MB of Python objects).
    assert protocol.queue.qsize() <= QUEUE_BOUND
    assert not transport.reading
    # One read taken off the socket, the rest still in the kernel (TCP pushes back).
    assert len(transport.incoming) == 1_000_000 - READ_SIZE
    assert len(protocol.unparsed) <= READ_SIZE
    app.release.set()
    async with asyncio.timeout(20):
        await app.done.wait()
    assert app.received == [index.to_bytes(4, "big") for index in range(count)]
    assert app.most_queued <= QUEUE_BOUND
    assert transport.reading and not transport.incoming and not protocol.unparsed


async def test_keepalive_waits_for_a_pong_behind_frames_the_application_has_not_read() -> None:
    app = Throttled(expect=50_000)
    timeout = 0.05
    protocol, transport, client = await open_socket(
        app, ws_ping_interval=3600, ws_ping_timeout=timeout
    )
    backlog = frames(client, 50_000)
    protocol.send_keepalive_ping()
    client.receive_data(b"".join(transport.written))  # the ping; the client answers...
    pong = b"".join(client.data_to_send())
    transport.written.clear()
    transport.feed(backlog + pong)  # ...behind everything it sent before
    await asyncio.sleep(timeout * 6)  # several pong deadlines pass while it is held back
    # uvicorn alone closes the socket with 1011 ("keepalive ping timeout") here.
    assert not protocol.close_sent and not transport.closing
    app.release.set()
    async with asyncio.timeout(20):
        await app.done.wait()
    for _ in range(20):
        await asyncio.sleep(0)  # the pong is parsed with the last frames
    assert protocol.pending_ping_payload is None  # it was read and matched
    assert not protocol.close_sent
    # A peer that does not answer once it is read again is still dropped.
    protocol.send_keepalive_ping()
    async with asyncio.timeout(5):
        await transport.closed.wait()
    assert protocol.close_sent


@pytest.mark.parametrize("size", [1000, 200_000, 1_500_000])
async def test_frames_larger_than_a_slice_arrive_whole(size: int) -> None:
    payloads = [bytes([n]) * size for n in range(3)]
    app = Throttled(expect=len(payloads))
    app.release.set()
    protocol, transport, client = await open_socket(app, ws_ping_interval=None)
    for payload in payloads:
        client.send_binary(payload)
    transport.feed(b"".join(client.data_to_send()))
    async with asyncio.timeout(5):
        await app.done.wait()
    assert app.received == payloads


async def test_a_server_stop_does_not_wait_for_frames_a_throttled_socket_has_queued() -> None:
    app = Throttled(expect=1)
    protocol, transport, client = await open_socket(app, ws_ping_interval=None)
    transport.feed(frames(client, 50_000))
    assert protocol.queue.qsize() > 0
    protocol.shutdown()
    app.release.set()
    async with asyncio.timeout(5):
        await app.finished.wait()
    # The application's next message is the disconnect: nothing left to pace through.
    assert app.received == [] and app.ended_with == {"type": "websocket.disconnect", "code": 1012}
