"""Giving memory back to the operating system once rooms have unloaded.

Two things keep a process at its peak size after its sockets and rooms are gone
(bench/RESULTS.md, measurement 4). Every closed socket leaves a reference cycle behind
(the websockets protocol holds its own parser generator), and an idle process allocates
too little for Python's collector to ever reach them: 2,000 closed sockets left ~170,000
objects uncollected. And glibc's malloc keeps freed pages mapped for reuse until
`malloc_trim` returns them; elsewhere (musl, macOS) there is no such call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def give_back(*, collect: bool) -> int:
    """Return free heap pages to the OS, after a full collection if `collect`; the
    number of objects collected.

    A full collection stops the event loop for as long as it takes (about 0.4 s after
    2,000 sockets closed), so callers ask for it only when nobody is waiting on the
    loop; while rooms are open, their allocations keep Python's own collector going."""
    started = time.perf_counter()
    collected = gc.collect() if collect else 0
    if _malloc_trim is not None:
        _malloc_trim(0)
    logger.debug(
        "Gave memory back in %.1f ms (%d objects collected)",
        (time.perf_counter() - started) * 1000,
        collected,
        extra={"count": collected},
    )
    return collected
