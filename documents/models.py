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
    """The document's content at a moment, with who edited since the previous version and
    how much. `state` is a full merged state (`Doc.get_update()`, a keyframe) or a delta
    against `base`; read it through `documents.history.version_state`."""

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
    compressed = models.BooleanField(default=False)
    """`state` is zlib-compressed."""
    base = models.ForeignKey(
        "self", on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    """For a delta: the version it applies to. None: `state` is a full state (keyframe)."""
    keyframe = models.ForeignKey(
        "self", on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    """For a delta: the keyframe its chain starts from, to read the chain in one query.
    RESTRICT: a version that others are rebuilt from goes only with its document."""
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
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    """SHA-256 of the rendered content: tells an unchanged document apart cheaply."""
    restored_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    """For a restore: the version whose content was brought back."""

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["document", "-created_at"])]

    def __str__(self) -> str:
        return self.name or f"{self.document} at {self.created_at:%Y-%m-%d %H:%M}"


class Role(models.TextChoices):
    """What a person may do with a document. The owner is `Document.owner`."""

    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class ShareLink(models.Model):
    """A secret link that gives whoever opens it (signed in) a role on the document.
    Deleting it revokes that access from everyone who came through it."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="links")
    token = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.get_role_display()} link to {self.document}"


class Membership(models.Model):
    """A person's role on a document: given directly, or taken by opening a link."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    link = models.ForeignKey(
        ShareLink, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["document", "user"],
                condition=models.Q(link__isnull=True),
                name="one_direct_membership",
            ),
            models.UniqueConstraint(
                fields=["document", "user", "link"], name="one_link_membership"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.document}"
