"""
ASGI entry point: HTTP goes to Django, WebSockets to the collab consumers.

The Django ASGI app is built before anything imports models (Channels' sample project
order), hence the late imports below.
"""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "editor.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from collab.lifespan import lifespan  # noqa: E402
from collab.outage import DatabaseOutageGuard  # noqa: E402
from collab.routing import websocket_urlpatterns  # noqa: E402
from editor.origins import OriginCheck  # noqa: E402

# The event loop shares the GIL with the database thread (journal commits); with
# Python's default 5 ms switch interval a commit can hold every socket up by that much
# at each switch. 0.5 ms halved fan-out p99 at 200 edits/s in bench/NOTES.md.
sys.setswitchinterval(settings.GIL_SWITCH_INTERVAL_SECONDS)

# Static files come from Django itself so that `make run` and `make serve` need no
# separate web server; a deployment behind nginx serves /static/ there and sets
# DJANGO_SERVE_STATIC=false.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # The Origin first (no database needed to refuse a foreign page), then a guard
        # that closes handshakes with 1013 while PostgreSQL is away, around the session
        # and user lookups that need it.
        "websocket": OriginCheck(
            DatabaseOutageGuard(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
        # Flushes every room's pending writes on a graceful shutdown.
        "lifespan": lifespan,
    }
)
