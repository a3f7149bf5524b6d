"""
Settings for the collaborative editor, read from the environment.

Every value has a safe development default except the secret key, which a non-debug
start refuses to take from the default. Bad values fail at start with a message that
names the variable, never later with a stack trace from deep inside a request.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from editor.logs import FORMATS, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-never-use-in-production"


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is unset while DJANGO_DEBUG is off. Set a long random "
        "DJANGO_SECRET_KEY for production, or DJANGO_DEBUG=true for development."
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "documents",
    "collab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "editor.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "editor.asgi.application"

# SQLite is the zero-setup default of `make run`; DATABASE_URL selects PostgreSQL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for the write lock instead of failing at once when two threads write.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The pub/sub layer publishes a group message once per process (one Redis PUBLISH, one
# subscription per process) and has no per-channel capacity that silently drops messages
# or group membership that expires after a day, unlike channels_redis.core. Delivery is
# still at most once: rooms heal gaps from the update log (see collab/sequences.py).
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "documents:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
SERVE_STATIC = env_bool("DJANGO_SERVE_STATIC", True)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# DJANGO_HTTPS=true for a deployment served over HTTPS: secure cookies, redirects and
# HSTS (`manage.py check --deploy` is clean with it). DJANGO_BEHIND_PROXY=true trusts the
# X-Forwarded-Proto header of a TLS-terminating proxy such as nginx.
HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Scripts only from this site (the committed bundle and htmx); inline styles are needed
# by ProseMirror and the collaboration carets; sockets and fetches to this origin only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# JSON lines for log collectors in production, readable text while developing
# (editor/logs.py; `make serve` hands uvicorn the same formatter with --log-config).
LOG_FORMAT = env_choice("DJANGO_LOG_FORMAT", "plain" if DEBUG else "json", FORMATS)
LOGGING = logging_config(LOG_FORMAT, env_str("DJANGO_LOG_LEVEL", "INFO"))

# How often Python's GIL may switch threads in the server (see editor/asgi.py).
GIL_SWITCH_INTERVAL_SECONDS = env_float("GIL_SWITCH_INTERVAL_SECONDS", 0.0005, minimum=0.0001)

# Tunables of the realtime layer, read lazily through collab.conf (see its docstrings).
COLLAB_MAX_MESSAGE_BYTES = env_int("COLLAB_MAX_MESSAGE_BYTES", 1024 * 1024, minimum=1024)
COLLAB_MAX_NESTING_DEPTH = env_int("COLLAB_MAX_NESTING_DEPTH", 256, minimum=8)
COLLAB_ROOM_UNLOAD_DELAY_SECONDS = env_float("COLLAB_ROOM_UNLOAD_DELAY_SECONDS", 10.0)
COLLAB_HEAL_INTERVAL_SECONDS = env_float("COLLAB_HEAL_INTERVAL_SECONDS", 5.0, minimum=0.05)
COLLAB_ADOPT_AFTER_SECONDS = env_float("COLLAB_ADOPT_AFTER_SECONDS", 30.0, minimum=0.1)
COLLAB_COMPACT_EVERY = env_int("COLLAB_COMPACT_EVERY", 500, minimum=1)
COLLAB_COMMIT_WINDOW_SECONDS = env_float("COLLAB_COMMIT_WINDOW_SECONDS", 0.005)
COLLAB_STORE_RETRY_MAX_SECONDS = env_float("COLLAB_STORE_RETRY_MAX_SECONDS", 5.0, minimum=0.01)
COLLAB_SEND_QUEUE_LIMIT = env_int("COLLAB_SEND_QUEUE_LIMIT", 2000, minimum=10)
COLLAB_AWARENESS_TIMEOUT_SECONDS = env_float("COLLAB_AWARENESS_TIMEOUT_SECONDS", 30.0)
COLLAB_MAX_DOCUMENT_BYTES = env_int("COLLAB_MAX_DOCUMENT_BYTES", 32 * 1024 * 1024, minimum=1024)
COLLAB_MAX_AWARENESS_BYTES = env_int("COLLAB_MAX_AWARENESS_BYTES", 4096, minimum=64)
COLLAB_VIEWER_PRESENCE = env_bool("COLLAB_VIEWER_PRESENCE", True)
COLLAB_UPDATES_PER_SECOND = env_float("COLLAB_UPDATES_PER_SECOND", 60.0, minimum=1)
COLLAB_UPDATES_BURST = env_float("COLLAB_UPDATES_BURST", 300.0, minimum=1)
COLLAB_AWARENESS_PER_SECOND = env_float("COLLAB_AWARENESS_PER_SECOND", 20.0, minimum=1)
COLLAB_AWARENESS_BURST = env_float("COLLAB_AWARENESS_BURST", 40.0, minimum=1)
COLLAB_FRAMES_PER_SECOND = env_float("COLLAB_FRAMES_PER_SECOND", 1000.0, minimum=1)
COLLAB_FRAMES_BURST = env_float("COLLAB_FRAMES_BURST", 3000.0, minimum=1)
COLLAB_ACCESS_RECHECK_SECONDS = env_float("COLLAB_ACCESS_RECHECK_SECONDS", 30.0, minimum=0.1)
# History (documents.history): an automatic version once edits pause this long, and at
# least this often while they go on.
COLLAB_VERSION_IDLE_SECONDS = env_float("COLLAB_VERSION_IDLE_SECONDS", 60.0, minimum=1.0)
COLLAB_VERSION_MAX_SECONDS = env_float("COLLAB_VERSION_MAX_SECONDS", 600.0, minimum=1.0)
# Automatic versions are taken by a child process of each server process: on a big
# document pycrdt holds the GIL for tens of ms at a time, which in a thread froze every
# socket of the process (collab/version_process.py).
COLLAB_VERSIONS_IN_CHILD_PROCESS = env_bool("COLLAB_VERSIONS_IN_CHILD_PROCESS", True)
