"""Settings for the test suite: the real settings with test-only defaults.

Tests run against the real PostgreSQL and Redis on 127.0.0.1 (see Makefile `test`);
DATABASE_URL and REDIS_URL override the defaults below."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/editor")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
# Readable logs in test output and in the logs of the servers end-to-end tests start
# (they inherit this environment); tests of the JSON format ask for it.
os.environ.setdefault("DJANGO_LOG_FORMAT", "plain")

from editor.settings import *  # noqa: E402,F403

# Short intervals so that healing, unloading and adoption are observable in tests.
COLLAB_ROOM_UNLOAD_DELAY_SECONDS = 0.2
COLLAB_HEAL_INTERVAL_SECONDS = 0.3
COLLAB_ADOPT_AFTER_SECONDS = 1.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Database work runs in worker threads; persistent connections there would outlive the
# test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# One test database per pytest run, so that concurrent runs (several engineers, or a
# benchmark next to the suite) never drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_editor_{os.getpid()}"}  # noqa: F405
# Likewise the rate-limit counters in the (Redis) cache: one prefix per pytest run, which
# the servers end-to-end tests start inherit through the environment.
CACHES["default"]["KEY_PREFIX"] = os.environ.setdefault(  # noqa: F405
    "EDITOR_TEST_CACHE_PREFIX", f"test-{os.getpid()}"
)
