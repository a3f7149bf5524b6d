from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

from collab.persistence import append_updates
from documents.models import Document


def test_documents_and_their_update_log_are_visible_in_the_admin(document: Document) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")
    append_updates(document.pk, [(b"\x00\x00", document.owner_id)])
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/documents/document/")
    assert listing.status_code == 200 and b"Plan" in listing.content
    log = client.get("/admin/documents/documentupdate/")
    assert log.status_code == 200 and f"{document.pk} #1".encode() in log.content
