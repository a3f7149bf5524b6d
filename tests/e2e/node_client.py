"""A stock Yjs client (Node, y-websocket's WebsocketProvider) driven from Python.

`NodeClient` starts `node tests/e2e/yjs_client.mjs` and talks JSON lines to it. Every call
waits for its reply with a deadline, so a test fails instead of hanging; `kill()` ends the
Node process with SIGKILL, which is what a crashed browser looks like to the server (the
socket closes without a close frame or an awareness goodbye).
"""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import ARTIFACTS, ROOT

DRIVER = Path(__file__).with_name("yjs_client.mjs")
# Slack on top of a command's own timeout: the driver reports its own timeouts, this one
# only catches a driver that stopped answering at all.
REPLY_SLACK_SECONDS = 5.0
START_TIMEOUT_SECONDS = 10.0


class NodeClientError(AssertionError):
    """The driver answered a command with an error (a bounded wait ran out, a refusal)."""

    def __init__(self, message: str, reply: dict[str, Any]) -> None:
        super().__init__(message)
        self.reply = reply


class NodeClient:
    def __init__(self, name: str) -> None:
        node = shutil.which("node")
        if node is None:
            # Fail, not skip: these tests are the proof that stock clients work.
            raise RuntimeError("node is not on PATH; the e2e tests need it")
        self.name = name
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"node-{name}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed once the process owns it)
        self.process = subprocess.Popen(
            [node, str(DRIVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        self._ids = itertools.count(1)
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # A reader thread, because a pipe read has no timeout of its own.
        self._reader = threading.Thread(target=self._read, name=f"node-{name}", daemon=True)
        self._reader.start()
        ready = self._next_reply(time.monotonic() + START_TIMEOUT_SECONDS)
        if not ready.get("ready"):
            self.kill()
            raise RuntimeError(f"node client {name} did not start: {ready}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue  # a library printed something: not a reply
            if isinstance(message, dict) and "id" in message:
                self._replies.put(message)
        self._replies.put(None)  # end of output: the process is gone

    def _next_reply(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"node client {self.name} did not answer in time")
        try:
            message = self._replies.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError(f"node client {self.name} did not answer in time") from None
        if message is None:
            self._replies.put(None)  # stays at end of output for later calls
            raise RuntimeError(f"node client {self.name} exited; see {self.log_path}")
        return message

    def request(self, cmd: str, *, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Send one command and return its reply; `NodeClientError` if it failed."""
        request_id = next(self._ids)
        payload = {"id": request_id, "cmd": cmd, "timeout": int(timeout * 1000), **args}
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(payload) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RuntimeError(f"node client {self.name} is gone; see {self.log_path}") from None
        deadline = time.monotonic() + timeout + REPLY_SLACK_SECONDS
        while True:
            reply = self._next_reply(deadline)
            # Replies are answered in order; one of an earlier call that timed out on this
            # side may still arrive and is skipped.
            if reply["id"] == request_id:
                break
        if not reply.get("ok"):
            raise NodeClientError(f"{self.name} {cmd}: {reply.get('error')}", reply)
        return reply

    # Commands

    def connect(
        self,
        ws_url: str,
        room: str,
        *,
        cookie: str | None = None,
        origin: str | None = None,
        timeout: float = 10.0,
    ) -> int:
        """Connect and wait for the first sync; return the client's Yjs client id."""
        reply = self.request(
            "connect", url=ws_url, room=room, cookie=cookie, origin=origin, timeout=timeout
        )
        return int(reply["clientID"])

    def insert(self, text: str, index: int | None = None) -> str:
        """Insert `text` (at the end by default); return the local text afterwards."""
        args: dict[str, Any] = {"text": text}
        if index is not None:
            args["index"] = index
        return str(self.request("insert", **args)["text"])

    def text(self) -> str:
        return str(self.request("text")["text"])

    def wait_text(
        self, *, equals: str | None = None, contains: str | None = None, timeout: float = 10.0
    ) -> str:
        args: dict[str, Any] = {}
        if equals is not None:
            args["equals"] = equals
        if contains is not None:
            args["contains"] = contains
        return str(self.request("waitText", timeout=timeout, **args)["text"])

    def set_presence(self, name: str, color: str) -> None:
        self.request("setPresence", user={"name": name, "color": color})

    def renew_presence(self, every: float) -> None:
        """Re-announce the local presence every `every` seconds (y-protocols does it every
        15 s), so a short server-side presence timeout never drops a live client."""
        self.request("renewPresence", intervalMs=int(every * 1000))

    def presence(self) -> list[dict[str, Any]]:
        """The remote awareness states this client holds: [{clientID, state}]."""
        return list(self.request("presence")["states"])

    def wait_presence(
        self, name: str, *, present: bool = True, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return list(
            self.request("waitPresence", name=name, present=present, timeout=timeout)["states"]
        )

    def wait_connected(self, *, connects: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the provider connected `connects` times in all and is synced."""
        return self.request("waitConnected", connects=connects, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """Connection state and every status/sync/close event since connect."""
        return self.request("status")

    def disconnect(self) -> None:
        self.request("disconnect")

    # Process

    def kill(self) -> None:
        """SIGKILL: no close frame, no awareness removal, like a crashed browser."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)

    def close(self) -> None:
        """Exit politely if possible, else kill."""
        if self.process.poll() is None:
            try:
                self.request("exit", timeout=2)
                self.process.wait(3)
            except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class NodeClients:
    """Starts Node clients and ends every one of them at teardown."""

    def __init__(self) -> None:
        self.started: list[NodeClient] = []

    def __call__(self, name: str) -> NodeClient:
        client = NodeClient(name)
        self.started.append(client)
        return client

    def close_all(self) -> None:
        for client in self.started:
            client.close()


@pytest.fixture
def node_clients() -> Iterator[NodeClients]:
    """`node_clients(name)` starts a Node y-websocket client; all are ended at teardown."""
    clients = NodeClients()
    try:
        yield clients
    finally:
        clients.close_all()
