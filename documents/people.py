"""
How a person appears to others: name, colour and the presence `user` built from them.

Pure functions of the account, shared by the editor page (which hands them to the front
end) and the realtime layer (which writes them into every presence state it relays, so
that what others see is the account, not whatever a client claims).
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser

# Dark enough for white initials and caret labels.
PALETTE = (
    "#b91c1c",
    "#c2410c",
    "#a16207",
    "#15803d",
    "#0f766e",
    "#0369a1",
    "#4338ca",
    "#7e22ce",
    "#be185d",
    "#475569",
)


def display_name(user: AbstractBaseUser) -> str:
    full_name = getattr(user, "get_full_name", lambda: "")()
    return str(full_name or user.get_username())


def user_colour(user: AbstractBaseUser) -> str:
    """A stable colour per user, the same in every browser and session."""
    return PALETTE[int(user.pk) % len(PALETTE)]


def presence_user(user: AbstractBaseUser) -> dict[str, object]:
    """The `user` field of an awareness state, as the editor sets it and the server
    enforces it (the presence bar tells people apart by `id`)."""
    return {"id": user.pk, "name": display_name(user), "color": user_colour(user)}
