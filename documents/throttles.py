"""
Rates of sign-ups per address and of new documents per user, the 429 page, and the page
of a sign-in lockout (django-axes counts the failed sign-ins: editor/settings.py).

Counted with django-ratelimit in the default cache, which is Redis (shared by every
process) when REDIS_URL is set (editor/settings.py). The rates are read per request, so
that tests can change them. A cache that fails is logged and lets the request through:
an outage of a counter must not stop people from working.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def signup_wait(request: HttpRequest) -> int | None:
    """Count a sign-up attempt from this request's address; seconds to wait if that
    address is over DJANGO_SIGNUP_RATE, else None."""
    return _wait(request, "documents.signup", "ip", settings.SIGNUP_RATE)


def creation_wait(request: HttpRequest) -> int | None:
    """Count a new document of the signed-in user; seconds to wait if they are over
    DJANGO_DOCUMENT_CREATE_RATE, else None."""
    return _wait(request, "documents.create", "user", settings.DOCUMENT_CREATE_RATE)


def _wait(request: HttpRequest, group: str, key: str, rate: str | None) -> int | None:
    if rate is None:
        return None
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except Exception:
        logger.exception("Rate limit %s not checked: the cache failed", group)
        return None
    # None also when the cache answered nothing (RATELIMIT_FAIL_OPEN).
    if usage is None or not usage["should_limit"]:
        return None
    logger.info(
        "Refused %s: over %s",
        group,
        rate,
        extra={"user_id": getattr(request.user, "pk", None), "reason": group},
    )
    return max(1, int(usage["time_left"]))


def in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{round(minutes / 60)} hours"


def too_many_requests(request: HttpRequest, message: str, wait: int) -> HttpResponse:
    """The 429 page: what was refused and when to try again."""
    response = render(
        request,
        "too_many_requests.html",
        {"message": message, "wait": in_words(wait)},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: the lockout page (429), which says for how
    long, or that an admin has to unlock. (Axes calls it with the request and, depending
    on the path it takes, different other arguments; none are needed here.)"""
    cool_off = get_cool_off(request)
    wait = int(cool_off.total_seconds()) if cool_off else None
    response = render(
        request,
        "registration/locked_out.html",
        {"wait": in_words(wait) if wait else None},
        status=429,
    )
    if wait:
        response["Retry-After"] = str(wait)
    return response
