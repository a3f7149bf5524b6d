from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from editor.logs import json_formatter


def run_settings(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter on the real settings with `env` only."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COLLAB_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "editor.settings",
            "DJANGO_SECRET_KEY": "x" * 50,
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_json_lines_carry_the_standard_and_the_passed_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("tests.logging.json")
    logger.addHandler(handler)
    logger.propagate = False
    document_id = uuid.uuid4()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception(
            "Closing socket of user %s",
            7,
            extra={
                "document_id": document_id,
                "user_id": 7,
                "close_code": 4400,
                "color_message": "\x1b[1mcoloured\x1b[0m",
            },
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["level"] == "ERROR"
    assert line["logger"] == "tests.logging.json"
    assert line["message"] == "Closing socket of user 7"
    assert line["process"] == os.getpid()
    assert (line["document_id"], line["user_id"], line["close_code"]) == (
        str(document_id),
        7,
        4400,
    )
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert "ValueError: boom" in line["exc_info"]
    # uvicorn's copy of the message with terminal colours is left out.
    assert "color_message" not in line


LOG_TWO_LINES = (
    "import django, logging; django.setup(); "
    "logging.getLogger('collab.rooms').warning("
    "'Healed %d updates', 3, extra={'document_id': 'd-1', 'count': 3}); "
    "logging.getLogger('uvicorn.error').info('Started server process [1]')"
)


def test_production_logs_are_json_lines_including_uvicorns() -> None:
    result = run_settings(LOG_TWO_LINES)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("collab.rooms", "Healed 3 updates"),
        ("uvicorn.error", "Started server process [1]"),
    ]
    assert lines[0]["document_id"] == "d-1" and lines[0]["count"] == 3


def test_debug_logs_are_plain_text_and_json_can_be_asked_for() -> None:
    plain = run_settings(LOG_TWO_LINES, DJANGO_DEBUG="true")
    assert plain.returncode == 0, plain.stderr
    first = plain.stderr.splitlines()[0]
    assert first.endswith(" WARNING collab.rooms Healed 3 updates"), first
    asked = run_settings(LOG_TWO_LINES, DJANGO_DEBUG="true", DJANGO_LOG_FORMAT="json")
    assert json.loads(asked.stderr.splitlines()[0])["count"] == 3
    forced_plain = run_settings(LOG_TWO_LINES, DJANGO_LOG_FORMAT="plain")
    assert forced_plain.stderr.startswith("20") and "{" not in forced_plain.stderr


def test_an_unknown_log_format_stops_the_start_naming_the_variable() -> None:
    result = run_settings("import editor.settings", DJANGO_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "DJANGO_LOG_FORMAT='xml' is not one of plain, json" in result.stderr
