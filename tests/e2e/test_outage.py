"""New sockets during a PostgreSQL outage, against a real server process: closed with 1013
("try again later") without a traceback, the outage logged once, and served again once
the database is back (collab/outage.py).

The outage is a TCP proxy of the test's own in front of PostgreSQL that the test severs
(tests/convergence/faults.py): the shared PostgreSQL is never touched."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection

from documents.models import Document
from tests.convergence.faults import SeverableProxy
from tests.convergence.peers import ClientLoop
from tests.e2e.pyclient import YClient
from tests.e2e.servers import ServerProcess, database_url
from tests.e2e.test_two_servers import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

StartServer = Callable[..., ServerProcess]
OUTAGE_LINE = "Database unavailable"
BACK_LINE = "Database back after"


@pytest.fixture
def proxy() -> Iterator[SeverableProxy]:
    loop = ClientLoop()
    severable = SeverableProxy(loop, int(connection.settings_dict["PORT"] or 5432))
    severable.start()
    yield severable
    severable.stop()
    loop.close()


async def handshake(
    server: ServerProcess, document: Document, cookie: str, *, sync: bool = True
) -> YClient:
    return await YClient.open(
        f"{server.ws_url}/{document.pk}",
        cookie=cookie,
        origin=server.http_url,
        sync=sync,
        timeout=10,
    )


async def refused_with(server: ServerProcess, document: Document, cookie: str) -> int:
    # Not a syncing client: its step 1 could meet the close already on its way.
    client = await handshake(server, document, cookie, sync=False)
    try:
        return await client.until_closed(timeout=10)
    finally:
        await client.close()


async def synced(server: ServerProcess, document: Document, cookie: str) -> YClient:
    client = await handshake(server, document, cookie)
    await client.until(lambda: client.synced, timeout=10)
    return client


def test_handshakes_while_postgres_is_away_are_closed_with_1013_and_logged_once(
    start_server: StartServer, proxy: SeverableProxy, alice: AbstractUser
) -> None:
    url = re.sub(r"@([^/:]+)(:\d+)?/", f"@127.0.0.1:{proxy.port}/", database_url())
    server = start_server(f"outage-{uuid.uuid4().hex[:8]}", env={"DATABASE_URL": url})
    document = Document.objects.create(owner=alice, title="outage")
    cookie = session_cookie(alice)

    async def scenario() -> tuple[list[int], int | None]:
        before = await synced(server, document, cookie)
        proxy.sever()
        codes = [await refused_with(server, document, cookie) for _ in range(4)]
        proxy.restore()
        after = await synced(server, document, cookie)
        await after.close()
        # The socket opened before the outage was left alone.
        still_open = before.close_code
        await before.close()
        return codes, still_open

    codes, still_open = asyncio.run(scenario())
    assert codes == [1013] * 4
    assert still_open is None

    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log
    assert len(re.findall(OUTAGE_LINE, log)) == 1, log
    [back] = re.findall(rf"{BACK_LINE} [0-9.]+ s; (\d+) new sockets were refused", log)
    assert int(back) == 4
