"""Take the automatic history versions that are due, for cron (the live rooms also do it
for the documents they hold open)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from documents.history import take_due_versions


class Command(BaseCommand):
    help = "Take the automatic history versions that are due (idle or max interval)."

    def handle(self, *args: Any, **options: Any) -> None:
        taken = take_due_versions()
        self.stdout.write(f"{taken} version(s) taken")
