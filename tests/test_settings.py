from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from editor.settings import env_bool, env_float, env_int


def start_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COLLAB_"))}
    return subprocess.run(
        [sys.executable, "-c", "import editor.settings"],
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_a_production_start_refuses_the_development_secret_key() -> None:
    result = start_settings(DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is unset" in result.stderr


def test_a_production_start_with_a_secret_key_works() -> None:
    assert start_settings(DJANGO_SECRET_KEY="x" * 50).returncode == 0


def test_bad_values_fail_loudly_and_name_the_variable() -> None:
    result = start_settings(DJANGO_DEBUG="true", COLLAB_MAX_MESSAGE_BYTES="lots")
    assert result.returncode != 0
    assert "COLLAB_MAX_MESSAGE_BYTES='lots' is not an integer" in result.stderr


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "5")
    monkeypatch.setenv("X_FLOAT", "-1")
    assert env_bool("X_BOOL", False) is True
    assert env_bool("X_MISSING", True) is True
    assert env_int("X_INT", 0) == 5
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        env_int("X_INT", 0, minimum=10)
    with pytest.raises(ImproperlyConfigured, match="X_FLOAT"):
        env_float("X_FLOAT", 1.0)
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("X_BOOL", False)


def test_redis_url_selects_the_pub_sub_layer() -> None:
    code = (
        "import editor.settings as s; "
        "print(s.CHANNEL_LAYERS['default']['BACKEND'], s.DATABASES['default']['ENGINE'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    default = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_DEBUG": "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert default.stdout.split() == [
        "channels.layers.InMemoryChannelLayer",
        "django.db.backends.sqlite3",
    ]
    redis = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "DJANGO_DEBUG": "true",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert redis.stdout.split() == [
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        "django.db.backends.postgresql",
    ]


def test_the_server_shortens_the_gil_switch_interval() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COLLAB_"))}
    probe = "import sys, editor.asgi; print(sys.getswitchinterval())"
    for env, expected in (({}, 0.0005), ({"GIL_SWITCH_INTERVAL_SECONDS": "0.002"}, 0.002)):
        result = subprocess.run(
            [sys.executable, "-c", probe],
            env={**clean, "DJANGO_DEBUG": "true", **env},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert float(result.stdout) == pytest.approx(expected)
