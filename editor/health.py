"""Health endpoints for load balancers and orchestrators.

/healthz: the process is up and serving (no dependencies checked).
/readyz: the database answers and a message makes a round trip through the channel layer;
503 with what failed otherwise."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@database_sync_to_async
def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "ready.check"})
    message = await layer.receive(channel)
    if message.get("type") != "ready.check":
        raise RuntimeError("unexpected message")


async def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database, "channel_layer": _channel_layer}
    results = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # every failure is reported, none crashes the probe
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:200]
        else:
            results[name] = "ok"
    ready = all(value == "ok" for value in results.values())
    return JsonResponse(results, status=200 if ready else 503)
