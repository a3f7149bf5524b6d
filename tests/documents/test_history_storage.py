"""How versions are stored: keyframes and deltas, rebuilt exactly; the duplicate rule on
cheap hashing; restore refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.persistence import append_updates, compact
from documents import history
from documents.history import (
    Kind,
    RestoreError,
    current_content,
    delta_update,
    restore_version,
    take_version,
    version_state,
)
from documents.models import Document, DocumentVersion
from documents.rendering import load_fragment, to_html, to_text
from tests.documents.editing import Writer


def forget_rebuilt_versions() -> None:
    """Drop this thread's rebuilt versions, so the next step reads the database only."""
    history._recent.__dict__.pop("versions", None)


def html_of(state: bytes) -> str:
    return to_html(load_fragment(state))


def commit(document: Document, writer: Writer, user: AbstractUser, change) -> None:  # type: ignore[no-untyped-def]
    writer._commit(user, change)


def test_versions_after_the_first_are_small_deltas_that_rebuild_exactly(
    document: Document, alice: AbstractUser, bob: AbstractUser
) -> None:
    writer = Writer(document)
    # A long first paragraph: deltas stay well under KEYFRAME_RATIO of the full state.
    writer.paragraph(alice, "introduction " * 2000)
    expected: dict[int, str] = {}
    for number in range(12):
        user = alice if number % 2 else bob
        writer.paragraph(user, f"paragraph {number} " + "words " * 40)
        if number % 3 == 2:  # deletions too, so delete sets differ between versions
            writer.edit_paragraph(user, number, f"rewritten {number}")
        if number % 4 == 3:
            compact(document.pk)
        version = take_version(document.pk)
        assert version is not None
        expected[version.pk] = html_of(current_content(document.pk).state)

    forget_rebuilt_versions()
    versions = list(DocumentVersion.objects.filter(document=document).order_by("id"))
    assert versions[0].base_id is None and versions[0].keyframe_id is None
    for previous, version in zip(versions, versions[1:], strict=False):
        assert version.base_id == previous.pk
        assert version.keyframe_id == versions[0].pk
        full = version_state(version)
        assert html_of(full) == expected[version.pk]
        # A delta holds what changed, not the whole document.
        assert len(bytes(version.state)) < len(full) / 3
    # Author attribution still comes from the log, not from the storage chain.
    assert {u.username for u in versions[-1].authors.all()} == {"alice"}


def test_a_keyframe_starts_a_new_chain_every_max_chain_versions(
    document: Document, alice: AbstractUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_CHAIN", 3)
    writer = Writer(document)
    writer.paragraph(alice, "introduction " * 500)
    texts = []
    for number in range(7):
        writer.paragraph(alice, f"line {number}")
        take_version(document.pk)
        texts.append(to_text(load_fragment(current_content(document.pk).state)))
    forget_rebuilt_versions()
    versions = list(DocumentVersion.objects.filter(document=document).order_by("id"))
    keyframes = [v.pk for v in versions if v.base_id is None]
    assert keyframes == [versions[0].pk, versions[3].pk, versions[6].pk]
    assert versions[4].keyframe_id == versions[3].pk and versions[5].base_id == versions[4].pk
    assert [to_text(load_fragment(version_state(v))) for v in versions] == texts


def test_a_delta_larger_than_the_ratio_of_the_full_state_is_stored_as_a_keyframe(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "short")
    take_version(document.pk)
    writer.replace_all(alice, "a whole new text " * 200)
    version = take_version(document.pk)
    assert version is not None and version.base_id is None
    assert "whole new text" in to_text(load_fragment(version_state(version)))


def test_the_delta_carries_only_new_deletions() -> None:
    base = Doc()
    text = base.get("default", type=XmlFragment).children.append(XmlText())
    # Many separate deletions: a delete set with hundreds of ranges.
    text.insert(0, "x" * 2000)
    for position in range(1000, 0, -2):
        del text[position]
    doc = Doc()
    doc.apply_update(base.get_update())
    doc.get("default", type=XmlFragment).children[0].insert(0, "new")
    naive = doc.get_update(base.get_state())
    delta = delta_update(base, doc)
    assert delta is not None and len(delta) < len(naive) / 10
    base.apply_update(delta)
    assert str(base.get("default", type=XmlFragment)) == str(doc.get("default", type=XmlFragment))


def test_a_mark_only_change_is_a_new_version_and_no_change_is_none(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "plain words")
    writer.paragraph(alice, "filler " * 300)
    first = take_version(document.pk)
    assert take_version(document.pk, kind=Kind.NAMED, name="same") == first

    def bold() -> None:
        writer.fragment.children[0].children[0].format(0, 5, {"bold": {}})

    commit(document, writer, alice, bold)
    second = take_version(document.pk)
    assert second is not None and second != first
    assert "<strong>plain</strong>" in html_of(version_state(second))

    def unbold() -> None:
        writer.fragment.children[0].children[0].format(0, 5, {"bold": None})

    commit(document, writer, alice, unbold)
    third = take_version(document.pk)
    assert third is not None and third not in (first, second)
    assert html_of(version_state(third)).startswith("<p>plain words</p>")
    assert third.base_id == second.pk  # a mark change is a small delta too
    # Typing and removing the same text changes the CRDT but not the content.
    writer.edit_paragraph(alice, 0, "plain words")
    assert take_version(document.pk) is None
    assert DocumentVersion.objects.filter(document=document).count() == 3


def test_old_full_state_versions_read_and_anchor_new_deltas(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "from before deltas " * 100)
    state = current_content(document.pk).state
    legacy = DocumentVersion.objects.create(
        document=document, state=state, seq=document.versions.count() + 1, content_hash=""
    )
    assert version_state(legacy) == state
    writer.paragraph(alice, "after")
    version = take_version(document.pk)
    assert version is not None and version.base_id == legacy.pk
    forget_rebuilt_versions()
    assert to_text(load_fragment(version_state(version))).endswith("\n\nafter\n")


def test_restoring_a_delta_version_with_nothing_cached(
    document: Document, alice: AbstractUser
) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "one " * 200)
    take_version(document.pk)
    writer.paragraph(alice, "two")
    target = take_version(document.pk)
    writer.edit_paragraph(alice, 1, "three")
    take_version(document.pk)
    assert target is not None and target.base_id is not None
    forget_rebuilt_versions()
    restored = restore_version(target, user=alice)
    expected = to_text(load_fragment(version_state(target)))
    assert expected.endswith("\n\ntwo\n")
    assert to_text(load_fragment(current_content(document.pk).state)) == expected
    assert to_text(load_fragment(version_state(restored))) == expected
    assert restored.restored_from == target


def test_deleting_a_document_removes_its_chains(document: Document, alice: AbstractUser) -> None:
    writer = Writer(document)
    writer.paragraph(alice, "long " * 300)
    for text in ("a", "b", "c"):
        writer.paragraph(alice, text)
        take_version(document.pk)
    assert DocumentVersion.objects.filter(document=document, base__isnull=False).count() == 2
    assert DocumentVersion.objects.filter(document=document).count() == 3
    document.delete()
    assert DocumentVersion.objects.count() == 0


def deeply_nested_paragraph(document: Document, user: AbstractUser) -> None:
    """A paragraph whose attribute nests deeper than server updates may (10,000)."""
    nested: object = "x"
    for _ in range(10_050):
        nested = [nested]
    doc = Doc()
    paragraph = doc.get("default", type=XmlFragment).children.append(XmlElement("paragraph"))
    paragraph.attributes["data"] = nested
    paragraph.children.append(XmlText("deep"))
    # Written to the log directly, as an older server or a bulk import could have.
    append_updates(document.pk, [(doc.get_update(), user.pk)])


def test_a_version_too_deep_to_restore_is_refused_with_nothing_changed(
    document: Document, alice: AbstractUser
) -> None:
    deeply_nested_paragraph(document, alice)
    deep = take_version(document.pk)
    assert deep is not None
    Writer(document, current_content(document.pk).state).replace_all(alice, "shallow")
    with pytest.raises(RestoreError):
        restore_version(deep, user=alice)


def test_the_restore_view_answers_400_for_a_version_too_deep(
    document: Document, alice: AbstractUser
) -> None:
    deeply_nested_paragraph(document, alice)
    deep = take_version(document.pk)
    assert deep is not None
    Writer(document, current_content(document.pk).state).replace_all(alice, "shallow")
    take_version(document.pk)
    count = DocumentVersion.objects.filter(document=document).count()
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("documents:version_restore", args=[document.pk, deep.pk]))
    assert response.status_code == 400
    assert "cannot be restored" in response.content.decode()
    assert to_text(load_fragment(current_content(document.pk).state)) == "shallow\n"
    assert DocumentVersion.objects.filter(document=document).count() == count
