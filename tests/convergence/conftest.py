"""Fixtures of the convergence suite: real server processes, peers, private Redis, and the
oracle that waits for every replica and the database to agree."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pycrdt import Doc

from collab.persistence import load_document
from tests.convergence.peers import ClientLoop, NodePeer, Peer, PyPeer, decode_state_vector
from tests.convergence.workload import Ledger, canonical, missing_or_duplicated
from tests.e2e.servers import ARTIFACTS, ServerProcess, free_port
from yjs.docs import build_doc


def session_cookie(user: AbstractUser) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def stored_update(document_id: uuid.UUID) -> bytes:
    """The document as PostgreSQL holds it (merged state plus log), loaded the way a room
    loads it, as one update."""
    doc, _ = build_doc(load_document(document_id).updates, document_id)
    return doc.get_update()


def state_vector_of(update: bytes) -> dict[int, int]:
    doc = Doc()
    doc.apply_update(update)
    return decode_state_vector(doc.get_state())


def union(vectors: list[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for vector in vectors:
        for client, clock in vector.items():
            merged[client] = max(merged.get(client, 0), clock)
    return merged


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll `predicate` until it holds; return the seconds it took; fail after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def wait_converged(
    peers: list[Peer],
    document_id: uuid.UUID,
    *,
    timeout: float = 30.0,
    covered: Sequence[dict[int, int]] = (),
) -> float:
    """Wait until every peer and the database hold the same state vector: the union of
    what every peer holds, the database holds, and `covered` (what peers that left had
    made). Returns the seconds it took."""
    last: dict[str, Any] = {}

    def agreed() -> bool:
        vectors = {peer.name: peer.snapshot()[1] for peer in peers}
        stored = state_vector_of(stored_update(document_id))
        target = union([*vectors.values(), stored, *covered])
        last.update(vectors=vectors, stored=stored, target=target)
        return stored == target and all(vector == target for vector in vectors.values())

    try:
        return wait_until(agreed, timeout=timeout, what="every replica and the database")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last}") from None


def assert_identical(
    peers: list[Peer], document_id: uuid.UUID, ledger: Ledger | None, fresh: Peer | None = None
) -> dict[str, Any]:
    """Every peer, a fresh client and the stored document read the same, and (with a
    ledger) hold every token exactly once. Returns the stored view."""
    stored = canonical(stored_update(document_id))
    everyone = [*peers, *([fresh] if fresh is not None else [])]
    for peer in everyone:
        assert canonical(peer.snapshot()[0]) == stored, f"{peer.name} differs from the database"
    if ledger is not None:
        problems = missing_or_duplicated(stored, ledger)
        assert not problems, problems
    return stored


@pytest.fixture
def client_loop() -> Iterator[ClientLoop]:
    loop = ClientLoop()
    yield loop
    loop.close()


class Peers:
    """Creates peers; every one is closed at teardown."""

    def __init__(self, loop: ClientLoop) -> None:
        self.loop = loop
        self.all: list[Peer] = []

    def py(self, name: str, **kwargs: Any) -> PyPeer:
        peer = PyPeer(name, self.loop, **kwargs)
        self.all.append(peer)
        return peer

    def node(self, name: str) -> NodePeer:
        peer = NodePeer(name)
        self.all.append(peer)
        return peer

    def close_all(self) -> None:
        for peer in self.all:
            with contextlib.suppress(Exception):
                peer.close()


@pytest.fixture
def peers(client_loop: ClientLoop) -> Iterator[Peers]:
    made = Peers(client_loop)
    yield made
    made.close_all()


class Servers:
    """Starts server processes; every one is stopped at teardown."""

    def __init__(self) -> None:
        self.started: list[ServerProcess] = []

    def __call__(self, name: str, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(name, **kwargs).start()
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(transactional_db: None) -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop_all()


class PrivateRedis:
    """A redis-server of this test alone (no persistence), which it may kill and restart:
    the shared one on 6379 belongs to everybody."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(ARTIFACTS / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._answers, timeout=10, what=f"redis on port {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def kill(self) -> None:
        """kill -9: memory (subscriptions) gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    ARTIFACTS.mkdir(exist_ok=True)
    instance = PrivateRedis()
    instance.start()
    yield instance
    instance.kill()


def seeds_from_env(default: str = "1,2,3") -> list[int]:
    """CONVERGE_SEEDS: "7", "1,5,9" or a range "0-199"."""
    spec = os.environ.get("CONVERGE_SEEDS", default).strip()
    seeds: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            low, high = part.split("-")
            seeds += range(int(low), int(high) + 1)
        elif part:
            seeds.append(int(part))
    return seeds
