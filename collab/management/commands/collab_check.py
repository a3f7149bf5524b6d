"""
`manage.py collab_check`: check a live deployment end to end, as an operator would after
a deploy.

It signs in over HTTP (the login form, so it needs only what a browser needs), opens a few
y-websocket connections to one document, has each insert a unique token, and checks that
every connection sees every token (fan-out, across processes behind a balancer), that the
server reports them committed (the "saved" extension), and that a fresh connection opened
afterwards reads them back (they were persisted). Then it deletes its tokens, checks the
deletion the same way, and prints PASS or FAIL; FAIL exits with status 1.

Its edits go to a root type of their own (`collab_check`), never to the editor's content,
and are removed at the end: the document keeps an empty `collab_check` text.

The framing is written here rather than taken from `collab.protocol`, whose parser accepts
only what clients send: this is a client, and must not share the server's assumptions.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import re
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from pycrdt import Doc, Text, TransactionEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from collab import protocol

ROOT = "collab_check"


class CheckFailed(Exception):
    pass


def sign_in(base: str, user: str, password: str, timeout: float) -> str:
    """Log in through the login form; return the Cookie header for the WebSocket."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = f"{base}/accounts/login/"
    with opener.open(login, timeout=timeout) as response:
        page = response.read().decode("utf-8", "replace")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if match is None:
        raise CheckFailed(f"no login form at {login}")
    form = urllib.parse.urlencode(
        {"username": user, "password": password, "csrfmiddlewaretoken": match.group(1)}
    ).encode()
    request = urllib.request.Request(login, data=form, headers={"Referer": login, "Origin": base})
    with opener.open(request, timeout=timeout):
        pass
    session = {cookie.name: cookie.value for cookie in jar}.get("sessionid")
    if session is None:
        raise CheckFailed(f"signing in as {user!r} failed (wrong user or password?)")
    return f"sessionid={session}"


class Client:
    """One y-websocket connection with its own pycrdt doc."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc = Doc()
        self.text = self.doc.get(ROOT, type=Text)
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.writes = 0
        self.saved = 0
        self._remote = False
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.doc.observe(self._on_transaction)
        self._queue(protocol.sync_step1(self.doc.get_state()))
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._write())]

    def _queue(self, frame: bytes) -> None:
        # Counted when queued, not when sent: "everything saved" must not hold while an
        # edit is still waiting for its turn to go out.
        if protocol.parse_message(frame).is_write:
            self.writes += 1
        self._outgoing.put_nowait(frame)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if not self._remote and event.update != b"\x00\x00":
            self._queue(protocol.sync_update(event.update))

    async def _write(self) -> None:
        while True:
            await self.ws.send(await self._outgoing.get())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    continue
                kind, pos = protocol.read_var_uint(message, 0)
                if kind == protocol.MessageType.SYNC:
                    step, pos = protocol.read_var_uint(message, pos)
                    length, pos = protocol.read_var_uint(message, pos)
                    payload = message[pos : pos + length]
                    if step == protocol.SyncStep.STEP1:
                        self._queue(protocol.sync_step2(self.doc.get_update(payload)))
                    else:
                        self._remote = True
                        try:
                            self.doc.apply_update(payload)
                        finally:
                            self._remote = False
                        if step == protocol.SyncStep.STEP2:
                            self.synced.set()
                elif kind == protocol.MessageType.SAVED:
                    self.saved, _ = protocol.read_var_uint(message, pos)
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.changed.set()

    async def until(self, condition: Any, what: str, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    self.changed.clear()
                    if condition():
                        return
                    if self.ws.close_code is not None:
                        raise CheckFailed(
                            f"socket closed ({self.ws.close_code}) waiting for {what}"
                        )
                    await self.changed.wait()
        except TimeoutError:
            raise CheckFailed(f"timed out after {seconds}s waiting for {what}") from None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()


class Command(BaseCommand):
    help = "Check a live deployment: edits converge across connections and are persisted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="ws://host:port or wss://host")
        parser.add_argument("--user", required=True)
        parser.add_argument(
            "--password", help="or set COLLAB_CHECK_PASSWORD (kept out of the process list)"
        )
        parser.add_argument("--document", required=True, type=uuid.UUID)
        parser.add_argument("--clients", type=int, default=3)
        parser.add_argument("--timeout", type=float, default=15.0)

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get("COLLAB_CHECK_PASSWORD")
        if not password:
            raise CommandError("give --password or set COLLAB_CHECK_PASSWORD")
        started = time.monotonic()
        try:
            report = asyncio.run(self.run_check(options, password))
        except (CheckFailed, OSError) as exc:
            self.stdout.write(f"FAIL: {exc}")
            raise CommandError("collab_check failed") from None
        self.stdout.write(f"PASS: {report} in {time.monotonic() - started:.2f}s")

    async def run_check(self, options: dict[str, Any], password: str) -> str:
        ws_base = options["url"].rstrip("/")
        parts = urllib.parse.urlsplit(ws_base)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme)
        if scheme is None:
            raise CheckFailed(f"--url must start with ws:// or wss://, not {ws_base!r}")
        base = f"{scheme}://{parts.netloc}"
        timeout = options["timeout"]
        cookie = await asyncio.to_thread(sign_in, base, options["user"], password, timeout)
        url = f"{ws_base}/ws/documents/{options['document']}?extensions=1"

        async def open_client() -> Client:
            try:
                ws = await connect(
                    url,
                    origin=base,  # type: ignore[arg-type]
                    additional_headers={"Cookie": cookie},
                    open_timeout=timeout,
                    proxy=None,
                )
            except Exception as exc:
                raise CheckFailed(f"could not open {url}: {exc}") from None
            client = Client(ws)
            await client.until(client.synced.is_set, "the first sync", timeout)
            return client

        run = uuid.uuid4().hex[:12]
        tokens = [f"[collab_check {run} #{i}]" for i in range(options["clients"])]
        clients = [await open_client() for _ in tokens]
        try:
            for client, token in zip(clients, tokens, strict=True):
                client.text.insert(len(client.text), token)
            for client in clients:
                await client.until(
                    lambda c=client: all(t in str(c.text) for t in tokens),
                    "every connection to see every edit",
                    timeout,
                )
                await client.until(
                    lambda c=client: c.saved >= c.writes, "the edits to be committed", timeout
                )
        finally:
            for client in clients:
                await client.close()
        fresh = await open_client()
        try:
            missing = [t for t in tokens if t not in str(fresh.text)]
            if missing:
                raise CheckFailed(f"a new connection does not read back {missing}")
            # Clean up: delete exactly our tokens, wherever they ended up.
            with fresh.doc.transaction():
                for token in tokens:
                    index = str(fresh.text).find(token)
                    del fresh.text[index : index + len(token)]
            await fresh.until(lambda: fresh.saved >= fresh.writes, "the clean-up commit", timeout)
        finally:
            await fresh.close()
        last = await open_client()
        try:
            left = [t for t in tokens if t in str(last.text)]
            if left:
                raise CheckFailed(f"the clean-up did not persist: {left} still there")
        finally:
            await last.close()
        return (
            f"{len(tokens)} connections converged, edits committed and read back by a new "
            "connection, and removed again"
        )
