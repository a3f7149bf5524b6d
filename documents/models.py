from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class Document(models.Model):
    """
    A collaboratively edited rich-text document.

    The CRDT content is `state` (a merged Yjs update covering the update log up to
    `state_seq`) plus the rows of `DocumentUpdate` that compaction has not folded in yet.
    `last_seq` is the highest sequence number handed out to the log; it is bumped under
    a row lock, so sequence numbers are gapless and follow commit order.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200, default="Untitled document")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    state = models.BinaryField(default=b"", editable=False)
    state_seq = models.PositiveBigIntegerField(default=0, editable=False)
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("documents:detail", args=[self.pk])


class DocumentUpdate(models.Model):
    """One appended Yjs update (raw bytes as accepted from a client), in log order."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="updates")
    seq = models.PositiveBigIntegerField()
    data = models.BinaryField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["document", "seq"], name="unique_update_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.seq}"
