"""The sharing panel of the editor page (htmx) and the page a share link opens.

Everyone who may read a document sees who has access; only its owner changes it."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from documents import sharing
from documents.access import get_document_for_user
from documents.models import Document, Membership, Role, ShareLink


def _owned(request: HttpRequest, pk: uuid.UUID) -> Document:
    document, _ = get_document_for_user(request.user, pk)
    if document.owner_id != request.user.pk:
        raise PermissionDenied
    return document


def _panel(request: HttpRequest, document: Document, error: str = "") -> HttpResponse:
    memberships = (
        Membership.objects.filter(document=document)
        .select_related("user", "link")
        .order_by("user__username", "link_id")
    )
    context = {
        "document": document,
        "is_owner": document.owner_id == request.user.pk,
        "memberships": memberships,
        "links": ShareLink.objects.filter(document=document).order_by("created_at"),
        "roles": Role.choices,
        "error": error,
    }
    return render(request, "documents/_share_panel.html", context)


@login_required
@require_GET
def share_panel(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    document, _ = get_document_for_user(request.user, pk)
    return _panel(request, document)


@login_required
@require_GET
def share_closed(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    get_document_for_user(request.user, pk)
    return render(request, "documents/_share_closed.html")


@login_required
@require_POST
def share_person(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    document = _owned(request, pk)
    role = request.POST.get("role", Role.VIEWER)
    if role not in Role.values:
        return _panel(request, document, "Choose a role.")
    try:
        sharing.share_with(document, request.POST.get("identifier", ""), role)
    except sharing.SharingError as exc:
        return _panel(request, document, str(exc))
    return _panel(request, document)


@login_required
@require_POST
def change_person(request: HttpRequest, pk: uuid.UUID, user_id: int) -> HttpResponse:
    document = _owned(request, pk)
    action = request.POST.get("action")
    if action == "remove":
        sharing.remove_person(document, user_id)
    elif action == "make-owner":
        try:
            sharing.transfer_ownership(document, user_id)
        except sharing.SharingError as exc:
            return _panel(request, document, str(exc))
        # The former owner may no longer manage sharing: show them the read-only panel.
        document.refresh_from_db()
    elif action in Role.values:
        get_object_or_404(Membership, document=document, user_id=user_id, link=None)
        sharing.set_role(document, user_id, action)
    else:
        return _panel(request, document, "Unknown action.")
    return _panel(request, document)


@login_required
@require_POST
def create_link(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    document = _owned(request, pk)
    role = request.POST.get("role", Role.VIEWER)
    if role not in Role.values:
        return _panel(request, document, "Choose a role.")
    sharing.create_link(document, role, created_by=request.user)
    return _panel(request, document)


@login_required
@require_POST
def revoke_link(request: HttpRequest, pk: uuid.UUID, link_id: int) -> HttpResponse:
    document = _owned(request, pk)
    sharing.revoke_link(get_object_or_404(ShareLink, pk=link_id, document=document))
    return _panel(request, document)


@login_required
@require_GET
def join(request: HttpRequest, token: str) -> HttpResponse:
    document = sharing.join_via_link(token, request.user)
    if document is None:
        raise Http404("This link does not work any more.")
    return redirect(document)
