from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractUser
from django.test import Client

from collab.registry import registry
from documents.models import Document
from editor.asgi import application
from tests.collab.yclient import YClient

_client_ids = itertools.count(1000)


@pytest.fixture(autouse=True)
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
async def close_rooms() -> AsyncIterator[None]:
    yield
    await registry.aclose_all()


def session_cookie(user: AbstractUser) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


Connect = Callable[..., Awaitable[YClient]]


@pytest.fixture
async def ws_connect() -> AsyncIterator[Connect]:
    """Open a socket to a document as a user, through the real ASGI application,
    and return a connected YClient that has sent its step 1."""
    opened: list[WebsocketCommunicator] = []

    async def connect(
        user: AbstractUser | None,
        document: Document,
        *,
        origin: str = "http://localhost:8000",
        query: str = "",
        hello: bool = True,
    ) -> YClient:
        headers = [(b"origin", origin.encode())]
        if user is not None:
            cookie = await database_sync_to_async(session_cookie)(user)
            headers.append((b"cookie", cookie.encode()))
        path = f"/ws/documents/{document.pk}" + (f"?{query}" if query else "")
        communicator = WebsocketCommunicator(application, path, headers=headers)
        opened.append(communicator)
        connected, code = await communicator.connect()
        if not connected:
            raise PermissionError(code)
        client = YClient(communicator, next(_client_ids))
        if hello:
            await client.hello()
        return client

    yield connect
    for communicator in opened:
        await communicator.disconnect()
