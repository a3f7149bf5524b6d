"""
History pages: the list of versions, one version, a comparison, restore, naming the
current content, and exports. Every view decides access through documents.access.
"""

from __future__ import annotations

import re
import uuid
from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from documents.access import get_document_for_user, get_editable_document_for_user
from documents.diffs import count_changes, diff_blocks, diff_html
from documents.history import (
    AUTHORS_LISTED,
    Kind,
    RestoreError,
    fragment_of,
    restore_version,
    take_version,
    version_fragment,
    versions_for_history,
)
from documents.models import Document, DocumentVersion
from documents.rendering import (
    TooLarge,
    collector_paused,
    html_head,
    to_blocks,
    to_html,
    to_markdown,
    to_text,
)

PAGE_SIZE = 50
COMPARE_NODES = 80_000
"""The most elements and texts of one version a comparison reads (40,000 paragraphs):
with the diff's own budget (documents.diffs), reading and comparing two such versions
stays under 3 s here. A document at the size cap (32 MB) written in paragraphs of 800
characters is 70,000 nodes and compares in about 2 s (tests/documents/
test_pages_at_cap.py); the same 32 MB as paragraphs of 350 characters is 150,000 nodes,
as empty ones 1.5 million: then the page says so and links the exports, as soon as the
first version is loaded."""
EXPORT_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


def _version(document: Document, version_id: int | str) -> DocumentVersion:
    try:
        number = int(version_id)
    except (TypeError, ValueError):
        raise Http404("No such version.") from None
    return get_object_or_404(DocumentVersion, document=document, pk=number)


def _list_authors(version: DocumentVersion) -> None:
    """Cut `listed_authors` (see `versions_for_history`) to what a listing names, and
    set `more_authors` when there are others."""
    listed = version.listed_authors  # type: ignore[attr-defined]
    version.more_authors = len(listed) > AUTHORS_LISTED  # type: ignore[attr-defined]
    version.listed_authors = listed[:AUTHORS_LISTED]  # type: ignore[attr-defined]


@login_required
@require_GET
def history(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Versions newest first, grouped by day; htmx asks for further pages ("load more")."""
    document, can_write = get_document_for_user(request.user, pk)
    named_only = request.GET.get("named") == "1"
    paginator = Paginator(versions_for_history(document, named_only=named_only), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    groups: list[tuple[date, list[DocumentVersion]]] = []
    # A page that starts in the middle of the previous page's day continues its group.
    previous_day = request.GET.get("after_day", "")
    for version in page.object_list:
        _list_authors(version)
        day = timezone.localdate(version.created_at)
        if groups and groups[-1][0] == day:
            groups[-1][1].append(version)
        else:
            groups.append((day, [version]))
    context = {
        "document": document,
        "can_write": can_write,
        "page": page,
        "groups": groups,
        "named_only": named_only,
        "continues_day": bool(groups) and previous_day == groups[0][0].isoformat(),
        "last_day": groups[-1][0].isoformat() if groups else "",
    }
    if request.htmx and request.GET.get("page"):
        return render(request, "documents/_history_page.html", context)
    return render(request, "documents/history.html", context)


@login_required
@require_GET
def version_detail(request: HttpRequest, pk: uuid.UUID, version_id: int) -> HttpResponse:
    """One version: its beginning when it is longer than a page shows (`html_head`)."""
    document, can_write = get_document_for_user(request.user, pk)
    version = _version(document, version_id)
    previous = (
        DocumentVersion.objects.filter(document=document, seq__lte=version.seq)
        .exclude(pk=version.pk)
        .order_by("-seq", "-id")
        .only("id")
        .first()
    )
    # html_head escapes every string and keeps only safe link schemes (documents.rendering).
    body, complete = html_head(version_fragment(version))
    user = get_user_model()
    version.listed_authors = list(  # type: ignore[attr-defined]
        version.authors.order_by(user.USERNAME_FIELD, "pk")[: AUTHORS_LISTED + 1]
    )
    _list_authors(version)
    return render(
        request,
        "documents/version.html",
        {
            "document": document,
            "can_write": can_write,
            "version": version,
            "previous": previous,
            "body": mark_safe(body),  # noqa: S308
            "complete": complete,
            "formats": list(EXPORT_TYPES),
        },
    )


@login_required
@require_GET
def compare(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """`?from=<id>&to=<id|now>`; `from` defaults to the version before `to`."""
    document, can_write = get_document_for_user(request.user, pk)
    to_param = request.GET.get("to", "now")
    newer = None if to_param == "now" else _version(document, to_param)
    from_param = request.GET.get("from")
    if from_param:
        older = _version(document, from_param)
    else:
        candidates = DocumentVersion.objects.filter(document=document)
        if newer is not None:
            candidates = candidates.filter(seq__lte=newer.seq).exclude(pk=newer.pk)
        older = candidates.order_by("-seq", "-id").first()
    versions = (
        DocumentVersion.objects.filter(document=document)
        .order_by("-created_at", "-id")
        .only("id", "created_at", "name")[:200]
    )
    context = {
        "document": document,
        "can_write": can_write,
        "older": older,
        "newer": newer,
        "versions": versions,
        "compare_nodes": f"{COMPARE_NODES:,}",
    }
    # One pause of the collector for all the objects of both versions (see
    # collector_paused), instead of one collection of them after each step.
    with collector_paused():
        try:
            old_blocks = (
                to_blocks(version_fragment(older), max_nodes=COMPARE_NODES)
                if older is not None
                else []
            )
            new_blocks = to_blocks(fragment_of(document.pk, newer), max_nodes=COMPARE_NODES)
        except TooLarge:
            return render(request, "documents/compare.html", {**context, "too_large": True})
        changes = diff_blocks(old_blocks, new_blocks)
        added, removed = count_changes(changes)
        diff = diff_html(changes)
    return render(
        request,
        "documents/compare.html",
        {
            **context,
            # diff_html escapes every string it takes from the document (documents.diffs).
            "diff": mark_safe(diff.html),  # noqa: S308
            "omitted": diff.omitted,
            "added": added,
            "removed": removed,
            "unchanged": added == removed == 0,
        },
    )


@login_required
@require_POST
def version_restore(request: HttpRequest, pk: uuid.UUID, version_id: int) -> HttpResponse:
    """Writers only: bring the version's content back as a new change."""
    document = get_editable_document_for_user(request.user, pk)
    version = _version(document, version_id)
    try:
        restore_version(version, user=request.user)  # type: ignore[arg-type]
    except RestoreError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    url = reverse("documents:history", args=[document.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_POST
def version_name(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Writers only: store the current content as a version named `name` (POST field),
    or name the latest version when nothing changed since it."""
    document = get_editable_document_for_user(request.user, pk)
    name = request.POST.get("name", "").strip()[:200]
    if not name:
        return HttpResponse("A name is required.", status=400, content_type="text/plain")
    version = take_version(document.pk, kind=Kind.NAMED, name=name, user=request.user)  # type: ignore[arg-type]
    if request.htmx:
        return render(
            request,
            "documents/_version_named.html",
            {"document": document, "version": version},
            status=201,
        )
    return redirect(reverse("documents:history", args=[document.pk]))


def _filename(document: Document, version: DocumentVersion | None, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", document.title).strip("-.")[:80] or "document"
    suffix = f"-version-{version.pk}" if version is not None else ""
    return f"{stem}{suffix}.{fmt}"


@login_required
@require_GET
def export(request: HttpRequest, pk: uuid.UUID, fmt: str) -> HttpResponse:
    """The current document, or `?version=<id>`, as HTML, Markdown or plain text."""
    if fmt not in EXPORT_TYPES:
        raise Http404("No such format.")
    document, _ = get_document_for_user(request.user, pk)
    version_param = request.GET.get("version")
    version = _version(document, version_param) if version_param else None
    fragment = fragment_of(document.pk, version)
    if fmt == "html":
        body = render(
            request,
            "documents/_version_export.html",
            {"document": document, "version": version, "body": mark_safe(to_html(fragment))},  # noqa: S308
        ).content.decode()
    elif fmt == "md":
        body = to_markdown(fragment)
    else:
        body = to_text(fragment)
    response = HttpResponse(body, content_type=EXPORT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{_filename(document, version, fmt)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
