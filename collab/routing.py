from __future__ import annotations

from django.urls import path

from collab.consumers import DocumentConsumer

# No trailing slash: y-websocket's WebsocketProvider appends the room name to its URL.
websocket_urlpatterns = [
    path("ws/documents/<uuid:document_id>", DocumentConsumer.as_asgi()),
]
