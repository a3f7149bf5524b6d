from __future__ import annotations

from django.urls import path

from documents import views

app_name = "documents"

urlpatterns = [
    path("", views.document_list, name="list"),
    path("new/", views.document_create, name="create"),
    path("<uuid:pk>/", views.document_detail, name="detail"),
    path("<uuid:pk>/rename/", views.document_rename, name="rename"),
    path("<uuid:pk>/row/", views.document_row, name="row"),
    path("<uuid:pk>/delete/", views.document_delete, name="delete"),
    path("<uuid:pk>/restore/", views.document_restore, name="restore"),
    path("trash/", views.trash, name="trash"),
    # Here rather than under /accounts/ because editor/urls.py is not this app's to edit.
    path("signup/", views.sign_up, name="signup"),
]
