"""The guard that closes handshakes with 1013 while PostgreSQL is away (collab/outage.py);
end to end, against a real server and a severed database, in tests/e2e/test_outage.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError

from collab import outage as outage_module
from collab.consumers import _unwrapped
from collab.outage import TRY_AGAIN_LATER, DatabaseOutageGuard, Outage, _Handshake


@pytest.fixture
def fresh_outage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outage]:
    state = Outage()
    monkeypatch.setattr(outage_module, "outage", state)
    yield state


async def run(guard: DatabaseOutageGuard) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "websocket"}, receive, send)
    return sent


def closed_with_1013(sent: list[dict[str, Any]]) -> bool:
    return sent[-1] == {
        "type": "websocket.close",
        "code": TRY_AGAIN_LATER,
        "reason": "database unavailable, try again later",
    }


async def test_a_handshake_that_meets_the_outage_is_accepted_then_closed_with_1013(
    fresh_outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    async def session_middleware(scope: Any, receive: Any, send: Any) -> None:
        raise OperationalError("connection refused")

    guard = DatabaseOutageGuard(session_middleware)
    with caplog.at_level(logging.INFO, logger="collab.outage"):
        sent = await run(guard)
    assert sent[0] == {"type": "websocket.accept"} and closed_with_1013(sent)
    assert fresh_outage.down
    [line] = caplog.records
    assert line.levelno == logging.ERROR and "Database unavailable" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback


async def test_a_socket_the_consumer_accepted_already_is_only_closed(fresh_outage: Outage) -> None:
    async def consumer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        raise OperationalError("server closed the connection unexpectedly")

    sent = await run(DatabaseOutageGuard(consumer))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert closed_with_1013(sent)


async def test_while_down_handshakes_wait_for_the_database_to_answer(
    fresh_outage: Outage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answers = False
    reached: list[bool] = []

    async def database_answers() -> bool:
        return answers

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "websocket.accept"})

    monkeypatch.setattr(outage_module, "_database_answers", database_answers)
    fresh_outage.failed(OperationalError("connection refused"))
    guard = DatabaseOutageGuard(inner)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="collab.outage"):
        for _ in range(3):
            assert closed_with_1013(await run(guard))
        assert not reached  # refused without going through the session middleware
        answers = True
        assert await run(guard) == [{"type": "websocket.accept"}]
        assert await run(guard) == [{"type": "websocket.accept"}]
    assert reached == [True, True]
    assert not fresh_outage.down
    [back] = caplog.records
    assert back.getMessage().startswith("Database back after")
    assert back.count == 4  # type: ignore[attr-defined]  # the first refusal and 3 more


def test_the_outage_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    state = Outage()
    with caplog.at_level(logging.INFO, logger="collab.outage"):
        for _ in range(5):
            state.failed(OperationalError("connection refused\nmore detail"))
        state.answered()
        state.answered()
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert "connection refused" in caplog.records[0].getMessage()
    assert "more detail" not in caplog.records[0].getMessage()
    assert "5 new sockets were refused" in caplog.records[1].getMessage()


def test_frames_are_written_below_the_guard() -> None:
    async def transport_send(message: dict[str, Any]) -> None:
        pass

    assert _unwrapped(_Handshake(transport_send).send) is transport_send
