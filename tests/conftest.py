from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from documents.models import Document


@pytest.fixture
def alice(db: None) -> AbstractUser:
    """Alice owns the documents in these tests."""
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1")


@pytest.fixture
def bob(db: None) -> AbstractUser:
    """Bob has no access to Alice's documents."""
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw-bob-1")


@pytest.fixture
def staff(db: None) -> AbstractUser:
    """Stella is staff and may open every document."""
    return get_user_model().objects.create_user(
        "stella", "stella@example.com", "pw-stella-1", is_staff=True
    )


@pytest.fixture
def document(alice: AbstractUser) -> Document:
    return Document.objects.create(owner=alice, title="Plan")
