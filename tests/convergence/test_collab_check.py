"""`manage.py collab_check` against a real server process: PASS on a healthy deployment,
FAIL (non-zero exit) with wrong credentials or a document the user may not open."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, Text

from documents.models import Document
from tests.convergence.conftest import Servers, stored_update
from tests.e2e.servers import ROOT, database_url

pytestmark = [pytest.mark.convergence, pytest.mark.django_db(transaction=True)]


def run_check(
    url: str, user: str, password: str, document: Document
) -> subprocess.CompletedProcess:
    # A separate process, as an operator runs it (and so that its asyncio.run does not
    # meet the test's own event loop).
    return subprocess.run(
        [sys.executable, "manage.py", "collab_check", "--url", url, "--user", user]
        + ["--document", str(document.pk), "--timeout", "10"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "COLLAB_CHECK_PASSWORD": password,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_collab_check_passes_and_cleans_up(
    servers: Servers, alice: AbstractUser, bob: AbstractUser, document: Document
) -> None:
    server = servers("check")
    url = f"ws://127.0.0.1:{server.port}"
    result = run_check(url, "alice", "pw-alice-1", document)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS"), result.stdout
    # Its tokens were written and removed: the stored text of its root is empty again.

    stored = Doc()
    stored.apply_update(stored_update(document.pk))
    assert str(stored.get("collab_check", type=Text)) == ""

    wrong = run_check(url, "alice", "not-her-password", document)
    assert wrong.returncode == 1 and wrong.stdout.startswith("FAIL"), wrong.stdout
    assert "signing in" in wrong.stdout
    stranger = run_check(url, "bob", "pw-bob-1", document)
    assert stranger.returncode == 1 and stranger.stdout.startswith("FAIL"), stranger.stdout
