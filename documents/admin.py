from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest

from documents.models import Document, DocumentUpdate


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "updated_at", "state_seq", "last_seq", "state_size"]
    list_filter = ["updated_at"]
    search_fields = ["title", "owner__username"]
    readonly_fields = ["id", "created_at", "updated_at", "state_seq", "last_seq", "state_size"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        # The database measures the state; a page of 100 documents at the size cap
        # would otherwise fetch 3.2 GB to print 100 numbers.
        return super().get_queryset(request).defer("state").annotate(state_bytes=Length("state"))

    @admin.display(description="state bytes", ordering="state_bytes")
    def state_size(self, obj: Document) -> int:
        return obj.state_bytes or 0  # type: ignore[attr-defined]


@admin.register(DocumentUpdate)
class DocumentUpdateAdmin(admin.ModelAdmin):
    list_display = ["document", "seq", "author", "created_at", "size"]
    list_select_related = ["document", "author"]
    readonly_fields = ["document", "seq", "author", "created_at", "size"]
    exclude = ["data"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DocumentUpdate]:
        # As for documents: the rows' bytes (up to 1 MiB each), and their documents'
        # states, stay in the database.
        return (
            super()
            .get_queryset(request)
            .defer("data", "document__state")
            .annotate(data_bytes=Length("data"))
        )

    @admin.display(description="bytes", ordering="data_bytes")
    def size(self, obj: DocumentUpdate) -> int:
        return obj.data_bytes or 0  # type: ignore[attr-defined]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        # The log is written by the realtime layer only.
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
