"""
Settings for the collaborative editor, read from the environment.

Every value has a safe development default except the secret key, which a non-debug
start refuses to take from the default. Bad values fail at start with a message that
names the variable, never later with a stack trace from deep inside a request.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
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


RATE_PATTERN = re.compile(r"^[0-9]+/[0-9]*[smhd]$")


def env_rate(name: str, default: str) -> str | None:
    """A rate as django-ratelimit writes it ("10/h", "5/15m"), or None for `off`."""
    value = (os.environ.get(name) or default).strip()
    if value.lower() == "off":
        return None
    if not RATE_PATTERN.match(value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate such as 10/h or 5/15m (or off)."
        )
    return value


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
    "axes",
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
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
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

# The cache holds the sign-up and document-creation counters (documents/throttles.py):
# shared through Redis by every process when there is one. Without REDIS_URL there is
# one process (`make serve` refuses WORKERS > 1), and its memory is the right place.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "editor",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes records failed sign-ins (in the database, shared by every process) and
# refuses further ones; ModelBackend does the signing in.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
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
# Behind the proxy, the client's address is the entry the proxy appended to
# X-Forwarded-For (DJANGO_PROXY_COUNT proxies in a chain: editor/client_address.py).
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
PROXY_COUNT = env_int("DJANGO_PROXY_COUNT", 1, minimum=1)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sign-in limits (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT failures within the
# cool-off, sign-in is refused for that username (from anywhere) and from that address
# (for any username), with the lockout page (429), until the cool-off has passed since
# the last failure or an admin unlocks (README "Security"). A cool-off of 0 locks until
# an admin unlocks.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("DJANGO_LOGIN_FAILURE_LIMIT", 10, minimum=1)
_LOGIN_COOLOFF_MINUTES = env_float("DJANGO_LOGIN_COOLOFF_MINUTES", 15.0)
AXES_COOLOFF_TIME = timedelta(minutes=_LOGIN_COOLOFF_MINUTES) if _LOGIN_COOLOFF_MINUTES else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "editor.client_address.limit_address"
AXES_LOCKOUT_CALLABLE = "documents.throttles.lockout_response"
# Not on success: resetting would delete the address's failures too, so that anyone
# with an account of their own could sign in between guesses at another one.
AXES_RESET_ON_SUCCESS = False
# Successful sign-ins are not logged to a table that nothing prunes; failures are.
AXES_DISABLE_ACCESS_LOG = True

# Sign-ups per address and new documents per user (documents/throttles.py), as
# django-ratelimit rates: "10/h" is 10 an hour, "5/15m" 5 per quarter hour, off: none.
SIGNUP_RATE = env_rate("DJANGO_SIGNUP_RATE", "10/h")
DOCUMENT_CREATE_RATE = env_rate("DJANGO_DOCUMENT_CREATE_RATE", "60/h")
RATELIMIT_IP_META_KEY = "editor.client_address.limit_address"
RATELIMIT_FAIL_OPEN = True

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
# A socket over its update or frame budget is read no faster than the budget allows
# (TCP holds the rest back at the sender); held back this long without a break, it is
# flooding and is closed with 4429 (collab/limits.py).
COLLAB_FLOOD_AFTER_SECONDS = env_float("COLLAB_FLOOD_AFTER_SECONDS", 300.0, minimum=1)
# Open sockets per user, over all documents and processes (collab/socket_cap.py); 0: no cap.
COLLAB_MAX_SOCKETS_PER_USER = env_int("COLLAB_MAX_SOCKETS_PER_USER", 50)
COLLAB_ACCESS_RECHECK_SECONDS = env_float("COLLAB_ACCESS_RECHECK_SECONDS", 30.0, minimum=0.1)
# History (documents.history): an automatic version once edits pause this long, and at
# least this often while they go on.
COLLAB_VERSION_IDLE_SECONDS = env_float("COLLAB_VERSION_IDLE_SECONDS", 60.0, minimum=1.0)
COLLAB_VERSION_MAX_SECONDS = env_float("COLLAB_VERSION_MAX_SECONDS", 600.0, minimum=1.0)
# Automatic versions are taken by a child process of each server process: on a big
# document pycrdt holds the GIL for tens of ms at a time, which in a thread froze every
# socket of the process (collab/version_process.py).
COLLAB_VERSIONS_IN_CHILD_PROCESS = env_bool("COLLAB_VERSIONS_IN_CHILD_PROCESS", True)
