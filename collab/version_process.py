"""
The child process that takes this server process's automatic history versions.

A version of a big document makes single pycrdt calls that hold the GIL for 40-50 ms
each (loading a 7 MB update, encoding it; py-spy --gil). Taken in a thread of the serving
process, they froze the event loop of every other document: typing p99 on other documents
rose to 65-123 ms during a big document's version (Node's server: 22 ms), and in a test
the loop stalled 180-195 ms during a version of an 8.4 MB document (under 4 ms with this
child). A child process has a GIL of its own. The registry still decides here which
documents are due (a few queries); the child only takes their versions.

Nothing here imports models: the child unpickles this module before Django is set up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import uuid
from concurrent.futures import BrokenExecutor
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections

from collab import memory

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

logger = logging.getLogger(__name__)


class VersionProcess:
    """One child process taking automatic versions, started when first needed (most
    server processes never need one, and an idle one holds memory), replaced when it
    dies, stopped with the server."""

    def __init__(self, *, grace_seconds: float = 3.0) -> None:
        self.grace_seconds = grace_seconds
        """How long a version in progress may run on at shutdown before the child is
        killed (its transaction rolls back; the document is due again at the next start)."""
        self.pid: int | None = None
        """The child's process id, once it has taken versions, until it stops."""
        self._executor: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # Imported here: multiprocessing is not loaded by a serving process at rest.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._executor = ProcessPoolExecutor(
                max_workers=1,
                # Not fork: the child would inherit the event loop, its sockets and the
                # database connections of other threads.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_set_up_child,
                # The current settings, not the module's: tests point DATABASES at their
                # test database at runtime.
                initargs=(settings.DATABASES,),
            )
        return self._executor

    async def take(self, document_ids: list[uuid.UUID]) -> int:
        """Take automatic versions of these documents in the child; how many were stored.
        A child that died is logged and replaced at the next call."""
        executor = self._started()
        loop = asyncio.get_running_loop()
        # BrokenProcessPool is caught by its base, which needs no import of multiprocessing.
        try:
            taken, self.pid = await loop.run_in_executor(
                executor, _take_automatic_versions, document_ids
            )
        except BrokenExecutor:
            if self._executor is executor:
                self._executor, self.pid = None, None
            executor.shutdown(wait=False, cancel_futures=True)
            logger.exception("The process taking automatic versions died; a new one takes over")
            return 0
        return taken

    async def aclose(self) -> None:
        """Stop the child, letting a version in progress finish for `grace_seconds` and
        killing it after that, so that no child outlives the server."""
        executor, self._executor, self.pid = self._executor, None, None
        if executor is None:
            return
        # The pool has no public way to kill its workers (terminate_workers is 3.14).
        processes = list((executor._processes or {}).values())  # type: ignore[attr-defined]
        stopping = asyncio.ensure_future(
            asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        )
        done, _ = await asyncio.wait({stopping}, timeout=self.grace_seconds)
        if not done:
            for process in processes:
                process.kill()
            done, _ = await asyncio.wait({stopping}, timeout=self.grace_seconds)
        if not done:
            logger.error("The process taking automatic versions did not stop")


def _set_up_child(databases: dict[str, Any]) -> None:
    # Stopping is the parent's decision: a Ctrl+C reaches the whole process group, and the
    # parent stops the child in its own shutdown, once the version in progress is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The settings module comes with the environment (DJANGO_SETTINGS_MODULE).
    import django

    settings.DATABASES = databases
    django.setup()
    # A parent killed outright (-9, the OOM killer) cannot stop its child, which would wait
    # for work forever; the child watches for that itself.
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


def _exit_with_parent() -> None:
    import multiprocessing
    import multiprocessing.connection

    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _take_automatic_versions(document_ids: list[uuid.UUID]) -> tuple[int, int]:
    from documents.history import take_automatic_versions

    try:
        return take_automatic_versions(document_ids), os.getpid()
    finally:
        # Idle between runs: no connection held open (tests drop their database), and the
        # pages of a big document's load handed back to the OS.
        connections.close_all()
        memory.give_back(collect=True)
