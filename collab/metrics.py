"""
Prometheus metrics of the realtime layer, served at /metrics.

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR (`make serve` does) so that
every process writes its samples there and /metrics, whichever process answers it, adds
them up; without it, /metrics shows the answering process only.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONNECTIONS = Gauge("collab_connections", "Open WebSocket connections", multiprocess_mode="livesum")
ROOMS = Gauge("collab_rooms_open", "Documents loaded in a room", multiprocess_mode="livesum")
UPDATES = Counter("collab_updates", "Document updates accepted from clients")
CLOSED = Counter("collab_sockets_closed", "Sockets the server closed, by close code", ["code"])
HEALED = Counter("collab_healed_updates", "Updates fetched from the log after a lost message")
ADOPTED = Counter("collab_adopted_updates", "Updates stored for a process that died first")
DROPPED_WRITES = Counter("collab_dropped_writes", "Writes refused from read-only sockets")
PUBLISH_DROPPED = Counter("collab_publish_dropped", "Group messages not published (outbox full)")
COMMIT_SECONDS = Histogram(
    "collab_commit_seconds",
    "Duration of one journal transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COMMIT_LAG_SECONDS = Histogram(
    "collab_commit_lag_seconds",
    "Time from receiving an update to its commit (oldest update of each batch)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STORE_FAILURES = Counter("collab_store_failures", "Journal transactions that failed (retried)")
THROTTLED_SECONDS = Counter(
    "collab_throttled_seconds",
    "Time frames from clients waited for their socket's update or frame budget (the "
    "socket is not read meanwhile)",
)
REJECTED_FRAMES = Counter(
    "collab_rejected_frames",
    "Frames refused from clients (their socket is closed), by close code and reason",
    ["code", "reason"],
)
FANOUT_SECONDS = Histogram(
    "collab_fanout_seconds",
    "Time from a group message's publication by one process to its receipt by another "
    "(wall clock: across hosts it includes their clock offset)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def mark_process_dead() -> None:
    """Drop this process's live gauges (connections, rooms) from the shared samples, or
    /metrics keeps adding them up after it exited. Counters and histograms stay."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
