from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractUser
from django.db import connection, transaction

from collab.registry import registry
from collab.version_process import VersionProcess
from documents.history import Kind, version_state
from documents.models import Document, DocumentVersion
from documents.rendering import load_fragment, to_text
from tests.collab.fakes import FakeConnection
from tests.documents.editing import Writer

# The child sees only what the test has committed.
pytestmark = pytest.mark.django_db(transaction=True)

# Spawning the child and setting Django up in it takes a second or two on a busy machine.
STARTUP_SECONDS = 60


@pytest.fixture(autouse=True)
def in_child(settings) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_VERSIONS_IN_CHILD_PROCESS = True


@pytest.fixture
async def version_process() -> AsyncIterator[VersionProcess]:
    process = VersionProcess()
    yield process
    await process.aclose()


@pytest.fixture
def writer(document: Document) -> Writer:
    return Writer(document)


write = database_sync_to_async(Writer.paragraph)


@database_sync_to_async
def latest_automatic_text(document: Document) -> str | None:
    version = (
        DocumentVersion.objects.filter(document=document, kind=Kind.AUTO)
        .order_by("-seq", "-id")
        .first()
    )
    return None if version is None else to_text(load_fragment(version_state(version)))


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def take_through_the_registry(document: Document) -> int:
    """Open the document and let the periodic check take its due version."""
    await registry.join(document.pk, FakeConnection())
    await registry.tick()
    assert registry._versions is not None
    return await asyncio.wait_for(registry._versions, timeout=STARTUP_SECONDS)


async def test_an_open_documents_automatic_version_is_taken_by_another_process(
    document: Document, alice: AbstractUser, writer: Writer
) -> None:
    await write(writer, alice, "hello")
    await take_through_the_registry(document)
    pid = registry.version_process.pid
    assert pid is not None and pid != os.getpid()
    assert await latest_automatic_text(document) == "hello\n"


async def test_without_the_child_process_the_version_is_taken_in_a_thread(
    document: Document, alice: AbstractUser, writer: Writer, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.COLLAB_VERSIONS_IN_CHILD_PROCESS = False
    await write(writer, alice, "hello")
    assert await take_through_the_registry(document) == 1
    assert registry.version_process.pid is None
    assert await latest_automatic_text(document) == "hello\n"


async def test_a_killed_child_is_replaced_by_the_next_run(
    document: Document,
    alice: AbstractUser,
    writer: Writer,
    version_process: VersionProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await write(writer, alice, "one")
    assert await asyncio.wait_for(version_process.take([document.pk]), STARTUP_SECONDS) == 1
    killed = version_process.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    await write(writer, alice, "two")
    assert await asyncio.wait_for(version_process.take([document.pk]), STARTUP_SECONDS) == 0
    assert "died" in caplog.text
    assert await asyncio.wait_for(version_process.take([document.pk]), STARTUP_SECONDS) == 1
    assert version_process.pid not in (None, killed, os.getpid())
    assert await latest_automatic_text(document) == "one\n\ntwo\n"


async def test_shutdown_stops_the_idle_child(
    document: Document, alice: AbstractUser, writer: Writer
) -> None:
    await write(writer, alice, "hello")
    await take_through_the_registry(document)
    pid = registry.version_process.pid
    assert pid is not None
    await asyncio.wait_for(registry.aclose_all(), timeout=10)
    assert_gone(pid)


def _wait_for_a_lock_waiter(timeout: float) -> bool:
    # Polled: another process's wait on a lock shows nowhere but in pg_stat_activity.
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


async def until_a_backend_waits_on_a_lock(timeout: float = 10.0) -> None:
    assert await database_sync_to_async(_wait_for_a_lock_waiter)(timeout)


@contextmanager
def row_locked(document: Document) -> Iterator[None]:
    """Another transaction holds the document's row lock meanwhile, so a version of it
    waits (take_version locks the row)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Document.objects.select_for_update().filter(pk=document.pk).get()
                locked.set()
                release.wait(timeout=STARTUP_SECONDS)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        yield
    finally:
        release.set()
        holder.join(timeout=10)


async def test_shutdown_kills_a_child_stuck_in_a_version_after_its_grace(
    document: Document,
    alice: AbstractUser,
    writer: Writer,
    version_process: VersionProcess,
) -> None:
    await write(writer, alice, "one")
    assert await asyncio.wait_for(version_process.take([document.pk]), STARTUP_SECONDS) == 1
    pid = version_process.pid
    assert pid is not None
    await write(writer, alice, "two")
    with row_locked(document):
        stuck = asyncio.ensure_future(version_process.take([document.pk]))
        # Shut down only once the child waits on the lock: before, the batch may not have
        # reached it yet, and shutdown would cancel it instead of waiting the grace.
        await until_a_backend_waits_on_a_lock()
        version_process.grace_seconds = 0.5
        started = time.monotonic()
        await asyncio.wait_for(version_process.aclose(), timeout=10)
        assert 0.5 <= time.monotonic() - started < 5
        assert_gone(pid)
        # Killed: nothing taken, and the error stays inside take().
        assert await asyncio.wait_for(stuck, timeout=10) == 0
    assert await latest_automatic_text(document) == "one\n"


PARENT = """
import asyncio, sys
import django
django.setup()
from collab.version_process import VersionProcess

process = VersionProcess()
asyncio.run(process.take([]))
print(process.pid, flush=True)
sys.stdin.read()
"""


def test_the_child_exits_when_its_server_is_killed_outright() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], STARTUP_SECONDS)
        assert ready, "the parent never reported its child"
        pid = int(parent.stdout.readline())
        exited = os.pidfd_open(pid)
    finally:
        parent.kill()
        parent.wait(timeout=10)
    try:
        ready, _, _ = select.select([exited], [], [], 10)
        assert ready, f"child {pid} outlived its parent"
    finally:
        os.close(exited)
