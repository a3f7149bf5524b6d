from __future__ import annotations

import os
import subprocess
import sys

from django.test import Client


def test_check_deploy_is_clean_for_production_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="editor.settings",
        DJANGO_SECRET_KEY="p" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
        DJANGO_HTTPS="true",
        DJANGO_ALLOWED_HOSTS="docs.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pages_carry_the_security_headers(db: None) -> None:
    response = Client().get("/accounts/login/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
