from __future__ import annotations

from django.contrib import admin

from documents.models import Document, DocumentUpdate


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "updated_at", "state_seq", "last_seq", "state_size"]
    list_filter = ["updated_at"]
    search_fields = ["title", "owner__username"]
    readonly_fields = ["id", "created_at", "updated_at", "state_seq", "last_seq", "state_size"]

    @admin.display(description="state bytes")
    def state_size(self, obj: Document) -> int:
        return len(obj.state or b"")


@admin.register(DocumentUpdate)
class DocumentUpdateAdmin(admin.ModelAdmin):
    list_display = ["document", "seq", "author", "created_at", "size"]
    list_select_related = ["document", "author"]
    readonly_fields = ["document", "seq", "author", "created_at", "size"]
    exclude = ["data"]

    @admin.display(description="bytes")
    def size(self, obj: DocumentUpdate) -> int:
        return len(obj.data or b"")

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        # The log is written by the realtime layer only.
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
