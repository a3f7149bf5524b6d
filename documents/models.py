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
    deleted_at = models.DateTimeField(null=True, blank=True)
    """Set when the document is moved to the trash; null while it is live."""

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


class DocumentVersion(models.Model):
    """The document's full merged state at a moment (`Doc.get_update()`), with who
    edited since the previous version and how much."""

    class Kind(models.TextChoices):
        AUTO = "auto", "Automatic"
        NAMED = "named", "Named"
        BEFORE_RESTORE = "before_restore", "Before a restore"
        RESTORE = "restore", "Restore"

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.AUTO)
    name = models.CharField(max_length=200, blank=True)
    state = models.BinaryField()
    seq = models.PositiveBigIntegerField()
    """The log position the state covers."""
    authors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    chars_added = models.PositiveIntegerField(default=0)
    chars_removed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["document", "-created_at"])]

    def __str__(self) -> str:
        return self.name or f"{self.document} at {self.created_at:%Y-%m-%d %H:%M}"
