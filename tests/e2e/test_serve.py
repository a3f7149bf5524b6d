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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from documents.models import Document
from tests.e2e.pyclient import YClient
from tests.e2e.servers import ROOT, database_url, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of `path`, parsed (a line being written is left out)."""
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def wait_for(condition: Any, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll `condition()` until it holds; fail if the server exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "make serve exited"
        assert time.monotonic() < deadline, "make serve did not start in time"
        time.sleep(0.1)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, Path]]:
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
                "WORKERS=2",
                f"PYTHON={sys.executable}",
                f"METRICS_DIR={metrics_dir}",
            ],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield process, port, log, metrics_dir
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_make_serve_logs_json_shares_metrics_and_drops_exited_workers_gauges(
    serve: tuple[subprocess.Popen[bytes], int, Path, Path],
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
