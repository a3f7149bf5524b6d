"""
Log line formats, chosen by DJANGO_LOG_FORMAT: `plain` for a person at a terminal,
`json` (one object per line) for a log collector.

JSON lines carry timestamp (UTC, ISO 8601), level, logger, message and process, plus
the fields a call passes with `extra=` (document_id, user_id, close_code, ...), so an
operator can filter on them. Settings use this module for Django's LOGGING and
`editor/logging.json` for uvicorn's `--log-config`, so both agree; it imports nothing of
Django's settings because uvicorn loads it before the application.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("plain", "json")

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        ["levelname", "name", "message", "process"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        # uvicorn passes the same message again with terminal colours.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def logging_config(log_format: str, level: str) -> dict[str, object]:
    """Django's LOGGING: everything to standard error in `log_format`."""
    loggers: dict[str, dict[str, object]] = {
        "django.db.backends": {"level": "WARNING"},
        # django-axes writes two INFO lines per successful sign-in; its failures and
        # lockouts are warnings.
        "axes": {"level": "WARNING"},
    }
    if log_format == "json":
        # uvicorn's default config sends "uvicorn.error" (its server messages) to a
        # coloured-text handler of its own: in JSON mode they take ours. Left alone in
        # plain mode, so `make run` stays readable. Neither "uvicorn" (configuring it
        # resets its children) nor "uvicorn.access": --no-access-log turns access lines
        # off by cutting that logger's propagation, which either would undo;
        # editor/logging.json puts access lines through this formatter instead.
        loggers["uvicorn.error"] = {"handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": PLAIN_FORMAT},
            "json": {"()": "editor.logs.json_formatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers,
    }
