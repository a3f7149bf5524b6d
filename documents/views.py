from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from documents.access import documents_for_user, get_document_for_user
from documents.models import Document


@login_required
@require_GET
def document_list(request: HttpRequest) -> HttpResponse:
    documents = documents_for_user(request.user).only("id", "title", "updated_at")
    return render(request, "documents/list.html", {"documents": documents})


@login_required
@require_POST
def document_create(request: HttpRequest) -> HttpResponse:
    document = Document.objects.create(owner=request.user)
    return redirect(document)


@login_required
@require_GET
def document_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    document, can_write = get_document_for_user(request.user, pk)
    return render(
        request,
        "documents/detail.html",
        {"document": document, "can_write": can_write},
    )
