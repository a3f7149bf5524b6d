"""`make serve` as an operator runs it: two uvicorn workers under a supervisor, JSON log
lines from all three processes, Prometheus samples shared through the metrics directory,
and live gauges of workers that exited removed from it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from documents.models import Document
from tests.e2e import node_client
from tests.e2e.node_client import NodeClients
from tests.e2e.pyclient import YClient
from tests.e2e.servers import ROOT, database_url, free_port
from tests.e2e.test_two_servers import stored_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# The fixture lives next to the client it manages; bound here so pytest finds it.
node_clients = node_client.node_clients


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of `path`, parsed (a line being written is left out)."""
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def wait_for(
    condition: Any,
    process: subprocess.Popen[bytes],
    timeout: float = 30.0,
    what: str = "make serve to start",
) -> None:
    """Poll `condition()` until it holds; fail if the server exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "make serve exited"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


Served = tuple[subprocess.Popen[bytes], int, Path, Path]
"""`make serve` itself, its port, its standard error (JSON lines) and its metrics folder."""


@pytest.fixture
def make_serve(tmp_path: Path) -> Iterator[Callable[[int], Served]]:
    """`make_serve(workers)` runs `make serve` as an operator does, against the test
    database and Redis; it is killed (the whole process group) at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(workers: int) -> Served:
        port = free_port()
        metrics_dir = tmp_path / "metrics"
        log = tmp_path / "stderr.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DJANGO_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env.update(
            # The test's key, so that the session cookie made here is valid there.
            DJANGO_SECRET_KEY=settings.SECRET_KEY,
            DATABASE_URL=database_url(),
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        )
        with open(log, "wb") as stderr, open(tmp_path / "stdout.log", "wb") as stdout:
            process = subprocess.Popen(
                [
                    "make",
                    "--no-print-directory",
                    "serve",
                    "HOST=127.0.0.1",
                    f"PORT={port}",
                    f"WORKERS={workers}",
                    f"PYTHON={sys.executable}",
                    f"METRICS_DIR={metrics_dir}",
                ],
                cwd=ROOT,
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        started.append(process)
        return process, port, log, metrics_dir

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def serve(make_serve: Callable[[int], Served]) -> Served:
    return make_serve(2)


def test_make_serve_logs_json_shares_metrics_and_drops_exited_workers_gauges(
    serve: Served,
) -> None:
    process, port, log, metrics_dir = serve

    def started() -> list[dict[str, Any]]:
        lines = json_lines(log) if log.exists() else []
        return [line for line in lines if line["message"] == "Application startup complete."]

    wait_for(lambda: len(started()) == 2, process)
    workers = {line["process"] for line in started()}
    assert len(workers) == 2
    for pid in workers:
        assert (metrics_dir / f"gauge_livesum_{pid}.db").exists()

    alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1")
    document = Document.objects.create(owner=alice, title="Operations")
    client = Client()
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def send_a_text_frame() -> int:
        socket = await YClient.open(
            f"ws://127.0.0.1:{port}/ws/documents/{document.pk}",
            cookie=cookie,
            origin=f"http://127.0.0.1:{port}",
            sync=False,
        )
        try:
            await socket.send("not a binary frame")
            return await socket.until_closed()
        finally:
            await socket.close()

    assert asyncio.run(send_a_text_frame()) == 4400
    with OPENER.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    rejected = ("collab_rejected_frames_total", (("code", "4400"), ("reason", "text_frame")))
    assert samples[rejected] == 1.0
    assert ("collab_fanout_seconds_count", ()) in samples

    # A graceful stop: SIGTERM to uvicorn's supervisor, named in its own first lines.
    [parent] = [
        int(match.group(1))
        for line in json_lines(log)
        if (match := re.fullmatch(r"Started parent process \[(\d+)\]", line["message"]))
    ]
    os.kill(parent, signal.SIGTERM)
    assert process.wait(30) == 0

    lines = json_lines(log)  # every line of all three processes parses as JSON
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "process"} <= line.keys(), line
    assert {line["process"] for line in lines} == workers | {parent}
    [closed] = [line for line in lines if line["logger"] == "collab.consumers"]
    assert closed["level"] == "WARNING"
    assert closed["document_id"] == str(document.pk) and closed["user_id"] == alice.pk
    assert (closed["close_code"], closed["reason"]) == (4400, "text_frame")
    # `make serve` turns access lines off; JSON logging must not bring them back.
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]

    # The workers' live gauges left with them; their counters stay to be summed.
    left = sorted(path.name for path in metrics_dir.iterdir())
    assert not [name for name in left if name.startswith("gauge_livesum_")], left
    for pid in workers:
        assert f"counter_{pid}.db" in left


# A worker that dies comes back (editor/serve.py)

BACK_WITHIN_SECONDS = 10.0
"""How soon the port must answer again after a worker died: the supervisor notices
within half a second, waits a second if the worker was young, and a new worker starts
(Django's imports) in two or three on this machine."""


def started_workers(log: Path) -> list[int]:
    """Pids of the workers that finished their startup, in order."""
    lines = json_lines(log) if log.exists() else []
    return [line["process"] for line in lines if line["message"] == "Application startup complete."]


def worker_of(log: Path, client_port: int) -> int:
    """The worker that accepted the socket whose client end is `client_port`."""
    [pid] = [
        line["process"]
        for line in json_lines(log)
        if line["message"].startswith(f'127.0.0.1:{client_port} - "WebSocket ')
    ]
    return int(pid)


def stored_text_closing(document_id: uuid.UUID) -> str:
    """The text PostgreSQL holds, read from a worker thread that keeps no connection."""
    try:
        return stored_text(document_id)
    finally:
        connection.close()


def healthz_answers(port: int) -> bool:
    try:
        with OPENER.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def gauge(port: int, name: str) -> float:
    with OPENER.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    )


@pytest.mark.parametrize(
    ("workers", "death"),
    [(1, signal.SIGKILL), (1, signal.SIGSEGV), (2, signal.SIGKILL)],
    ids=["1-worker-kill-9", "1-worker-segfault", "2-workers-kill-9"],
)
def test_a_dead_worker_comes_back_and_nothing_saved_is_lost(
    make_serve: Callable[[int], Served],
    node_clients: NodeClients,
    workers: int,
    death: signal.Signals,
) -> None:
    process, port, log, metrics_dir = make_serve(workers)
    wait_for(lambda: len(started_workers(log)) == workers, process)
    first_generation = started_workers(log)
    alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1")
    document = Document.objects.create(owner=alice, title="Survives")
    client = Client()
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    ws_url, origin = f"ws://127.0.0.1:{port}/ws/documents", f"http://127.0.0.1:{port}"

    # A stock y-websocket provider, which reconnects by itself.
    node = node_clients("serve-node")
    node.connect(ws_url, str(document.pk), cookie=cookie, origin=origin)
    node.insert("typed before. ")

    async def scenario() -> int:
        writer = await YClient.open(
            f"{ws_url}/{document.pk}", cookie=cookie, origin=origin, extensions=True
        )
        await writer.until(lambda: writer.synced and "typed before. " in str(writer.text))
        writer.type_text("saved before. ")
        await writer.until_saved()  # the server said: committed
        victim = worker_of(log, writer.ws.local_address[1])
        assert victim in first_generation

        os.kill(victim, death)
        killed_at = time.monotonic()
        await writer.until_closed()
        # Whatever the dead worker was told it had saved is in PostgreSQL.
        stored = await asyncio.to_thread(stored_text_closing, document.pk)
        assert "saved before. " in stored and "typed before. " in stored
        # An edit while the worker is away waits in the provider for its reconnect.
        await asyncio.to_thread(node.insert, "typed while it was down. ")

        await asyncio.to_thread(
            wait_for, lambda: healthz_answers(port), process, 3 * BACK_WITHIN_SECONDS, "/healthz"
        )
        back_after = time.monotonic() - killed_at
        assert back_after < BACK_WITHIN_SECONDS, f"the port answered {back_after:.1f}s later"
        await asyncio.to_thread(wait_for, lambda: len(started_workers(log)) == workers + 1, process)
        replacement = started_workers(log)[-1]
        assert replacement not in first_generation

        # The open client converges with one that comes after the death.
        await asyncio.to_thread(node.wait_connected, timeout=20)
        fresh = await YClient.open(f"{ws_url}/{document.pk}", cookie=cookie, origin=origin)
        everything = ("typed before. ", "saved before. ", "typed while it was down. ")
        await fresh.until(lambda: all(part in str(fresh.text) for part in everything), 20)
        assert await asyncio.to_thread(node.wait_text, equals=str(fresh.text)) == str(fresh.text)

        # The dead worker's live gauges left /metrics with it: two sockets are open now
        # (the provider's and the fresh one), not those it had.
        assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
        assert await asyncio.to_thread(gauge, port, "collab_connections") == 2
        await fresh.close()
        await writer.close()
        print(f"\n{death.name} of 1 of {workers} worker(s): port answered {back_after:.1f}s later")
        return victim

    victim = asyncio.run(scenario())
    assert process.poll() is None
    [died] = [line for line in json_lines(log) if line["message"].startswith("Worker [")]
    assert died["level"] == "ERROR"
    assert died["message"].startswith(f"Worker [{victim}] died (killed by {death.name})")
