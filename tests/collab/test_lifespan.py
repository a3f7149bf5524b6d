from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from collab import lifespan as lifespan_module
from collab.lifespan import lifespan


async def run_lifespan() -> list[str]:
    """Start and shut down the lifespan app; the message types it sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await asyncio.wait_for(lifespan({"type": "lifespan"}, inbox.get, send), timeout=10)
    return sent


async def test_shutdown_takes_this_workers_live_gauges_out_of_the_shared_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    pid = os.getpid()
    names = [f"gauge_livesum_{pid}.db", f"counter_{pid}.db", f"gauge_livesum_{pid + 1}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert await run_lifespan() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # This process's gauges go; its counters and other workers' gauges stay.
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])


async def test_shutdown_without_a_metrics_directory_just_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert await run_lifespan() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_startup_builds_the_channel_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    monkeypatch.setattr(lifespan_module, "get_channel_layer", lambda: built.append("layer"))
    await run_lifespan()
    assert built == ["layer"]
