from __future__ import annotations

from django.urls import path

from documents import history_views, sharing_views, views

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
    # History (issue 4): documents/history_views.py
    path("<uuid:pk>/history/", history_views.history, name="history"),
    path("<uuid:pk>/history/name/", history_views.version_name, name="version_name"),
    path("<uuid:pk>/history/<int:version_id>/", history_views.version_detail, name="version"),
    path(
        "<uuid:pk>/history/<int:version_id>/restore/",
        history_views.version_restore,
        name="version_restore",
    ),
    path("<uuid:pk>/compare/", history_views.compare, name="compare"),
    path("<uuid:pk>/export.<str:fmt>", history_views.export, name="export"),
    # Sharing (issue 5): documents/sharing_views.py
    path("<uuid:pk>/share/", sharing_views.share_panel, name="share"),
    path("<uuid:pk>/share/closed/", sharing_views.share_closed, name="share_closed"),
    path("<uuid:pk>/share/people/", sharing_views.share_person, name="share_person"),
    path(
        "<uuid:pk>/share/people/<int:user_id>/",
        sharing_views.change_person,
        name="change_person",
    ),
    path("<uuid:pk>/share/links/", sharing_views.create_link, name="create_link"),
    path(
        "<uuid:pk>/share/links/<int:link_id>/revoke/",
        sharing_views.revoke_link,
        name="revoke_link",
    ),
    path("join/<str:token>/", sharing_views.join, name="join"),
]
