from __future__ import annotations

import uuid

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from documents import sharing, throttles
from documents.access import (
    documents_for_user,
    get_document_for_user,
    get_editable_document_for_user,
    get_owned_document_for_user,
    get_trashed_document_for_user,
    trashed_documents_for_user,
)
from documents.forms import DocumentSearchForm, DocumentTitleForm, SignUpForm
from documents.models import Document
from documents.people import presence_user

PAGE_SIZE = 20


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _notify_title(document: Document) -> None:
    # Imported here: documents never imports collab at module level (ARCHITECTURE).
    from collab.edits import notify_title

    document_id, title = document.pk, document.title
    transaction.on_commit(lambda: notify_title(document_id, title))


def _page(params: QueryDict, documents: QuerySet[Document]) -> Page:
    return Paginator(documents, PAGE_SIZE).get_page(params.get("page"))


def _listing(request: HtmxHttpRequest, params: QueryDict) -> dict[str, object]:
    search = DocumentSearchForm(params)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    show = params.get("show", "all")
    documents = documents_for_user(request.user).select_related("owner")
    if show == "mine":
        documents = documents.filter(owner=request.user)
    elif show == "shared":
        # Empty until sharing exists: documents_for_user returns only owned documents now.
        documents = documents.exclude(owner=request.user)
    else:
        show = "all"
    if query:
        documents = documents.filter(title__icontains=query)
    documents = documents.order_by("-created_at", "-pk").only(
        "id", "title", "created_at", "updated_at", "owner__username"
    )
    return {
        "page_obj": _page(params, documents),
        "search": search,
        "query": query,
        "show": show,
        "title_form": DocumentTitleForm(),
    }


@login_required
@require_GET
def document_list(request: HtmxHttpRequest) -> HttpResponse:
    context = _listing(request, request.GET)
    if request.htmx and request.htmx.target == "document-list":
        return render(request, "documents/_document_list.html", context)
    return render(request, "documents/list.html", context)


@login_required
@require_POST
def document_create(request: HtmxHttpRequest) -> HttpResponse:
    wait = throttles.creation_wait(request)
    if wait is not None:
        message = (
            "You have created many documents in a short time. "
            f"You can create the next one in {throttles.in_words(wait)}."
        )
        if not request.htmx:
            return throttles.too_many_requests(request, message, wait)
        # The list, with the reason on top (app.js lets htmx swap a 429 in).
        context = {**_listing(request, QueryDict()), "refused": message}
        response = render(request, "documents/_document_list.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    form = DocumentTitleForm(request.POST or None)
    title = form.cleaned_data["title"] if form.is_valid() else "Untitled document"
    document = Document.objects.create(owner=request.user, title=title)
    if request.htmx:
        # The list comes back from its first page, where the new document now leads.
        context = {**_listing(request, QueryDict()), "created": document}
        response = render(request, "documents/_document_list.html", context)
        response["HX-Push-Url"] = reverse("documents:list")
        return response
    return redirect(document)


@login_required
@require_GET
def document_detail(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    document, can_write = get_document_for_user(request.user, pk)
    config = {
        "documentId": str(document.pk),
        "canWrite": can_write,
        # The same `user` the server writes into this socket's presence states.
        "user": presence_user(request.user),
    }
    return render(
        request,
        "documents/detail.html",
        {
            "document": document,
            "can_write": can_write,
            "editor_config": config,
            "title_form": DocumentTitleForm(instance=document),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def document_rename(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """GET: the inline rename form of a list row. POST: rename; the editor page posts
    with `place=editor` and gets its title field back, the list gets its row back."""
    document = get_editable_document_for_user(request.user, pk)
    place = "editor" if request.POST.get("place") == "editor" else "row"
    form = DocumentTitleForm(request.POST or None, instance=document)
    if request.method == "POST" and form.is_valid():
        # Only the title: a full save would write back the log positions read at the
        # start of this request over a concurrent append or compaction.
        form.save(commit=False).save(update_fields=["title", "updated_at"])
        _notify_title(document)
        if not request.htmx:
            return redirect(document if place == "editor" else reverse("documents:list"))
        form = DocumentTitleForm(instance=document)
        template = "documents/_title.html" if place == "editor" else "documents/_row.html"
        return render(request, template, {"document": document, "title_form": form})
    status = 422 if request.method == "POST" else 200
    if place == "editor":
        return render(
            request,
            "documents/_title.html",
            {"document": Document.objects.get(pk=document.pk), "title_form": form},
            status=status,
        )
    return render(
        request, "documents/_row_rename.html", {"document": document, "form": form}, status=status
    )


@login_required
@require_GET
def document_row(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """A list row, for cancelling an inline rename."""
    document, _ = get_document_for_user(request.user, pk)
    return render(request, "documents/_row.html", {"document": document})


@login_required
@require_POST
def document_delete(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    document = get_owned_document_for_user(request.user, pk)
    document.deleted_at = timezone.now()
    document.save(update_fields=["deleted_at"])
    # Open editors are closed with "document gone", on every process.
    sharing.access_changed(document)
    if request.htmx:
        return render(request, "documents/_row_trashed.html", {"document": document})
    return redirect("documents:list")


@login_required
@require_GET
def trash(request: HtmxHttpRequest) -> HttpResponse:
    documents = trashed_documents_for_user(request.user).order_by("-deleted_at", "-pk")
    context = {"page_obj": _page(request.GET, documents)}
    if request.htmx and request.htmx.target == "trash-list":
        return render(request, "documents/_trash_list.html", context)
    return render(request, "documents/trash.html", context)


@login_required
@require_POST
def document_restore(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Back from the trash. From the list's "undo" the row comes back; from the trash
    page the row leaves."""
    document = get_trashed_document_for_user(request.user, pk)
    document.deleted_at = None
    document.save(update_fields=["deleted_at"])
    if not request.htmx:
        return redirect("documents:trash")
    if request.POST.get("place") == "list":
        return render(request, "documents/_row.html", {"document": document})
    return render(request, "documents/_trash_restored.html", {"document": document})


@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("documents:list")
    if request.method == "POST":
        wait = throttles.signup_wait(request)
        if wait is not None:
            message = "Too many accounts were signed up for from your network recently."
            return throttles.too_many_requests(request, message, wait)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("documents:list")
    return render(request, "registration/signup.html", {"form": form})
