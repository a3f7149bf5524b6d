"""The environment variables of the abuse limits (README "Security")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from editor.settings import env_rate


def settings_with(**env: str) -> dict[str, object]:
    """The limit settings a fresh process reads from `env` (and nothing else of ours)."""
    code = (
        "import json, editor.settings as s; print(json.dumps({"
        "'failures': s.AXES_FAILURE_LIMIT, 'cooloff': s.AXES_COOLOFF_TIME and "
        "s.AXES_COOLOFF_TIME.total_seconds(), 'signup': s.SIGNUP_RATE, "
        "'create': s.DOCUMENT_CREATE_RATE, 'sockets': s.COLLAB_MAX_SOCKETS_PER_USER, "
        "'cache': s.CACHES['default']['BACKEND'], 'proxy': s.BEHIND_PROXY}))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "COLLAB_")) and k != "REDIS_URL"
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_DEBUG": "true", **env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ImproperlyConfigured(result.stderr.strip().splitlines()[-1])
    return dict(json.loads(result.stdout))


def test_defaults() -> None:
    assert settings_with() == {
        "failures": 10,
        "cooloff": 900.0,
        "signup": "10/h",
        "create": "60/h",
        "sockets": 50,
        # One process without Redis: its memory holds the counters.
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "proxy": False,
    }


def test_everything_is_tunable() -> None:
    assert settings_with(
        DJANGO_LOGIN_FAILURE_LIMIT="5",
        DJANGO_LOGIN_COOLOFF_MINUTES="0",
        DJANGO_SIGNUP_RATE="3/15m",
        DJANGO_DOCUMENT_CREATE_RATE="off",
        COLLAB_MAX_SOCKETS_PER_USER="0",
        REDIS_URL="redis://127.0.0.1:6379/0",
        DJANGO_BEHIND_PROXY="true",
    ) == {
        "failures": 5,
        "cooloff": None,  # locked until an admin unlocks
        "signup": "3/15m",
        "create": None,
        "sockets": 0,
        "cache": "django.core.cache.backends.redis.RedisCache",
        "proxy": True,
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SIGNUP_RATE", "ten an hour", "is not a rate"),
        ("DJANGO_DOCUMENT_CREATE_RATE", "5/y", "is not a rate"),
        ("DJANGO_LOGIN_FAILURE_LIMIT", "0", "below its minimum"),
        ("COLLAB_MAX_SOCKETS_PER_USER", "-1", "below its minimum"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"{name}.*{message}"):
        settings_with(**{name: value})


def test_env_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_rate("X_RATE", "10/h") == "10/h"
    monkeypatch.setenv("X_RATE", " OFF ")
    assert env_rate("X_RATE", "10/h") is None
    monkeypatch.setenv("X_RATE", "0/d")  # closes sign-up, say
    assert env_rate("X_RATE", "10/h") == "0/d"
