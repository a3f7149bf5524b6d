from __future__ import annotations

import pytest
from django.test import AsyncClient

from editor import health

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_answers_without_dependencies() -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("layer", ["memory", "redis"])
async def test_readyz_checks_the_database_and_a_channel_layer_round_trip(
    settings: object, layer: str
) -> None:
    if layer == "memory":
        settings.CHANNEL_LAYERS = {  # type: ignore[attr-defined]
            "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
        }
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "channel_layer": "ok"}


async def test_readyz_fails_with_what_is_down(
    settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHANNEL_LAYERS = {  # type: ignore[attr-defined]
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens there
        }
    }
    monkeypatch.setattr(health, "READY_TIMEOUT_SECONDS", 0.5)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok" and body["channel_layer"].startswith("failed")
