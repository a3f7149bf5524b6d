"""Writing Tiptap-shaped content into a document's update log, as a given user."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.persistence import append_updates
from documents.models import Document


class Writer:
    """A peer that types paragraphs and appends each change to the log as `user`."""

    def __init__(self, document: Document, state: bytes = b"") -> None:
        self.document = document
        self.doc = Doc()
        if state:
            self.doc.apply_update(state)
        self.fragment = self.doc.get("default", type=XmlFragment)

    def _commit(self, user: AbstractUser | None, change) -> int:  # type: ignore[no-untyped-def]
        before = self.doc.get_state()
        with self.doc.transaction():
            change()
        _, last = append_updates(
            self.document.pk, [(self.doc.get_update(before), user.pk if user else None)]
        )
        return last

    def paragraph(self, user: AbstractUser | None, text: str) -> int:
        def change() -> None:
            element = self.fragment.children.append(XmlElement("paragraph"))
            element.children.append(XmlText(text))

        return self._commit(user, change)

    def replace_all(self, user: AbstractUser | None, *texts: str) -> int:
        def change() -> None:
            del self.fragment.children[0 : len(self.fragment.children)]
            for text in texts:
                element = self.fragment.children.append(XmlElement("paragraph"))
                element.children.append(XmlText(text))

        return self._commit(user, change)

    def edit_paragraph(self, user: AbstractUser | None, index: int, text: str) -> int:
        def change() -> None:
            node = self.fragment.children[index].children[0]
            node.clear()
            node.insert(0, text)

        return self._commit(user, change)
