from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.utils import timezone

from collab.persistence import compact
from documents.history import (
    Kind,
    current_content,
    due_documents,
    restore_version,
    take_due_versions,
    take_version,
    version_state,
)
from documents.models import Document, DocumentUpdate, DocumentVersion
from documents.rendering import load_fragment, to_html, to_text
from tests.documents.editing import Writer
from tests.documents.test_rendering import FIXTURES


def text_of(state: bytes) -> str:
    return to_text(load_fragment(state))


@pytest.fixture(autouse=True)
def intervals(settings) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_VERSION_IDLE_SECONDS = 60
    settings.COLLAB_VERSION_MAX_SECONDS = 600


def test_a_first_edit_makes_the_document_due_at_once(
    document: Document, alice: AbstractUser
) -> None:
    assert due_documents() == []
    Writer(document).paragraph(alice, "hello")
    assert due_documents() == [document.pk]
    assert take_due_versions() == 1
    assert due_documents() == []


def test_automatic_version_waits_for_a_pause(document: Document, alice: AbstractUser) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "one")
    take_due_versions()
    writer.paragraph(alice, "two")
    now = timezone.now()
    assert take_due_versions(now=now + timedelta(seconds=30)) == 0
    assert take_due_versions(now=now + timedelta(seconds=61)) == 1
    latest = DocumentVersion.objects.filter(document=document).order_by("-seq").first()
    assert latest is not None and latest.kind == Kind.AUTO
    assert text_of(version_state(latest)) == "one\n\ntwo\n"


def test_long_sessions_get_a_version_every_max_interval(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "one")
    take_due_versions()
    first = writer.paragraph(alice, "two")
    writer.paragraph(alice, "three")
    now = timezone.now()
    # Editing started 601 s ago and never paused for a minute.
    DocumentUpdate.objects.filter(document=document, seq=first).update(
        created_at=now - timedelta(seconds=601)
    )
    assert due_documents(now=now + timedelta(seconds=5)) == [document.pk]
    DocumentUpdate.objects.filter(document=document, seq=first).update(
        created_at=now - timedelta(seconds=100)
    )
    assert due_documents(now=now + timedelta(seconds=5)) == []


def test_never_two_identical_versions_in_a_row(document: Document, alice: AbstractUser) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "same")
    first = take_version(document.pk)
    assert first is not None
    assert take_version(document.pk) is None
    # A change that changes nothing visible: the version moves over it, nothing new.
    last = writer.edit_paragraph(alice, 0, "same")
    assert take_version(document.pk) is None
    first.refresh_from_db()
    assert first.seq == last
    assert due_documents(now=timezone.now() + timedelta(hours=1)) == []
    assert DocumentVersion.objects.filter(document=document).count() == 1


def test_named_version_names_the_latest_when_nothing_changed(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "draft")
    auto = take_version(document.pk)
    named = take_version(document.pk, kind=Kind.NAMED, name="Draft 1", user=alice)
    assert named is not None and auto is not None and named.pk == auto.pk
    assert DocumentVersion.objects.get().name == "Draft 1"
    writer.paragraph(alice, "more")
    second = take_version(document.pk, kind=Kind.NAMED, name="Draft 2", user=alice)
    assert second is not None and second.pk != auto.pk
    assert (second.kind, second.name, second.created_by) == (Kind.NAMED, "Draft 2", alice)


def test_versions_name_the_authors_since_the_previous_version(
    document: Document, alice: AbstractUser, bob: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "from alice")
    writer.paragraph(bob, "from bob")
    first = take_version(document.pk)
    assert first is not None
    assert set(first.authors.all()) == {alice, bob}
    writer.paragraph(bob, "bob again")
    # Compaction in between must not lose who wrote the rows after the version.
    compact(document.pk)
    assert DocumentUpdate.objects.filter(document=document).count() == 1
    second = take_version(document.pk)
    assert second is not None
    assert list(second.authors.all()) == [bob]
    compact(document.pk)
    assert not DocumentUpdate.objects.filter(document=document).exists()


def test_compaction_without_versions_folds_everything(
    document: Document, alice: AbstractUser
) -> None:
    Writer(document).paragraph(alice, "a")
    compact(document.pk)
    assert not DocumentUpdate.objects.filter(document=document).exists()
    assert text_of(current_content(document.pk).state) == "a\n"


def test_versions_count_characters_added_and_removed(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "hello world")
    first = take_version(document.pk)
    assert first is not None and (first.chars_added, first.chars_removed) == (11, 0)
    writer.edit_paragraph(alice, 0, "hello brave new world")
    second = take_version(document.pk)
    assert second is not None and (second.chars_added, second.chars_removed) == (10, 0)
    writer.edit_paragraph(alice, 0, "hello world")
    third = take_version(document.pk)
    assert third is not None and (third.chars_added, third.chars_removed) == (0, 10)


def test_restore_is_a_forward_change_and_can_be_undone(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "one")
    old = take_version(document.pk)
    assert old is not None
    writer.replace_all(alice, "two", "three")
    last_seq_before = Document.objects.get(pk=document.pk).last_seq

    restored = restore_version(old, user=alice)

    assert text_of(current_content(document.pk).state) == "one\n"
    assert restored.kind == Kind.RESTORE and restored.restored_from == old
    assert list(restored.authors.all()) == [alice] and restored.created_by == alice
    before = DocumentVersion.objects.get(document=document, kind=Kind.BEFORE_RESTORE)
    assert text_of(version_state(before)) == "two\n\nthree\n"
    # One new log row authored by the restorer: the change is in the log, not a new doc.
    row = DocumentUpdate.objects.get(document=document, seq=last_seq_before + 1)
    assert row.author == alice and restored.seq == row.seq
    # The restore itself is undone by restoring the version taken before it.
    restore_version(before, user=alice)
    assert text_of(current_content(document.pk).state) == "two\n\nthree\n"


def test_restoring_the_current_content_changes_nothing(
    document: Document, alice: AbstractUser
) -> None:
    Writer(document).paragraph(alice, "one")
    version = take_version(document.pk)
    assert version is not None
    last_seq = Document.objects.get(pk=document.pk).last_seq
    assert restore_version(version, user=alice) == version
    assert Document.objects.get(pk=document.pk).last_seq == last_seq
    assert DocumentVersion.objects.filter(document=document).count() == 1


def test_restore_keeps_marks_and_structure(document: Document, alice: AbstractUser) -> None:
    rich_state = base64.b64decode(FIXTURES["rich"]["update"])
    Document.objects.filter(pk=document.pk).update(state=rich_state)
    rich = take_version(document.pk)
    assert rich is not None
    Writer(document, current_content(document.pk).state).replace_all(alice, "gone")
    restore_version(rich, user=alice)
    restored_html = to_html(load_fragment(current_content(document.pk).state))
    assert restored_html == FIXTURES["rich"]["html"]


def test_take_versions_command(document: Document, alice: AbstractUser, capsys) -> None:  # type: ignore[no-untyped-def]
    Writer(document).paragraph(alice, "x")
    call_command("take_versions")
    assert "1 version(s) taken" in capsys.readouterr().out
    assert DocumentVersion.objects.filter(document=document).count() == 1
