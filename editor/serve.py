"""
How this project runs uvicorn, in one place: `make run`, `make serve`, the end-to-end
tests and bench/ all start `python -m editor.serve`, so they serve with the same flags.

    python -m editor.serve --host 0.0.0.0 --port 8000 --workers 2

runs the workers under a supervisor that starts a new worker whenever one dies, whatever
killed it (a segfault, the OOM killer, kill -9), with one worker too. uvicorn supervises
only from two workers up, and stops the whole service when a replacement fails to start;
a single `uvicorn` process that dies takes the service with it.

`--no-supervisor` serves in this very process instead: for development, and for tests and
benchmarks that need the pid of the process that serves (to kill it, or to measure it).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

APP = "editor.asgi:application"
WS_PROTOCOL = "collab.websocket_protocol:WebSocketProtocol"
"""uvicorn's websockets-sansio protocol with a bounded read-ahead and a keepalive that
waits for a throttled socket (see that module)."""
JSON_LOG_CONFIG = Path(__file__).with_name("logging.json")
WS_MAX_SIZE = 4 * 1024 * 1024
"""uvicorn's own frame cap; the application closes frames above COLLAB_MAX_MESSAGE_BYTES
(1 MiB) with a clear 4413 before this one is reached."""
GRACEFUL_SHUTDOWN_SECONDS = 10
QUICK_DEATH_SECONDS = 10.0
"""A worker that dies sooner than this after its start is restarted after a pause that
doubles each time (up to MAX_RESTART_DELAY_SECONDS): a worker that cannot start (Redis
away, say) is retried without spinning a core on Django imports."""
MAX_RESTART_DELAY_SECONDS = 30.0

# The supervisor's own lines go where uvicorn's do (JSON with editor/logging.json).
logger = logging.getLogger("uvicorn.error")


def uvicorn_options(
    *,
    host: str,
    port: int,
    workers: int = 1,
    ws_max_size: int = WS_MAX_SIZE,
    ws_ping_interval: float = 20.0,
    ws_ping_timeout: float = 20.0,
    ws_per_message_deflate: bool = False,
    access_log: bool = False,
    timeout_graceful_shutdown: int = GRACEFUL_SHUTDOWN_SECONDS,
) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.Config` this project serves with."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        "http": "httptools",
        "ws": WS_PROTOCOL,
        "ws_max_size": ws_max_size,
        "ws_ping_interval": ws_ping_interval,
        "ws_ping_timeout": ws_ping_timeout,
        # Costs CPU per frame on both ends for little gain on small Yjs updates
        # (bench/NOTES.md); bench/ measures it on as an experiment.
        "ws_per_message_deflate": ws_per_message_deflate,
        "lifespan": "on",
        "timeout_graceful_shutdown": timeout_graceful_shutdown,
        "access_log": access_log,
        # uvicorn's own coloured text unless the logs are JSON: then its supervisor, which
        # never loads Django's settings, goes through the same formatter as Django.
        "log_config": LOGGING_CONFIG if log_format() == "plain" else str(JSON_LOG_CONFIG),
    }


def log_format() -> str:
    """DJANGO_LOG_FORMAT as editor/settings.py resolves it (plain when debugging), without
    loading the settings into the supervisor."""
    debug = os.environ.get("DJANGO_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    return os.environ.get("DJANGO_LOG_FORMAT") or ("plain" if debug else "json")


class Supervisor(Multiprocess):
    """uvicorn's supervisor (signals, SIGHUP restarts, health pings) with another rule
    for a worker that dies: it is replaced, whatever its exit status. Only a worker that
    exits by itself before any worker has finished its startup stops the service instead
    (exit status 3): a configuration that cannot start fails every time. Later, a worker
    that fails to start meets an outage of something it needs (Redis, say), and is retried
    with a pause that grows while it keeps failing."""

    def __init__(self, config: uvicorn.Config, sockets: list[Any]) -> None:
        super().__init__(config, sockets)
        self.served = False
        """A worker has finished its startup once."""
        self.failed_to_start = False
        self._started_at: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        self._not_before: dict[int, float] = {}

    def init_processes(self) -> None:
        super().init_processes()
        now = time.monotonic()
        for process in self.processes:
            if process.pid is not None:
                self._started_at[process.pid] = now

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if index not in self._not_before:
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    if not self.served:
                        self.served = process.is_ready(timeout=1)
                    continue
                # Alive here means it did not answer the health ping in time: hung.
                hung = process.process.is_alive()
                process.kill()
                process.join()
                if self.should_exit.is_set():
                    return
                self._buried(index, process, hung=hung)
                if self.should_exit.is_set():
                    return
            if time.monotonic() >= self._not_before[index]:
                del self._not_before[index]
                replacement = Process(self.config, self.sockets)
                replacement.start()
                if replacement.pid is not None:
                    self._started_at[replacement.pid] = time.monotonic()
                self.processes[index] = replacement
                logger.info("Started worker [%s] in place of a dead one", replacement.pid)

    def _buried(self, index: int, process: Process, *, hung: bool) -> None:
        """Report a dead worker, take its live gauges out of /metrics, and schedule its
        replacement."""
        exitcode = process.exitcode
        if cannot_start(served=self.served, exitcode=exitcode, hung=hung):
            logger.error(
                "Worker [%s] exited with status %s before any worker started; stopping",
                process.pid,
                exitcode,
            )
            self.failed_to_start = True
            self.should_exit.set()
            return
        if hung:
            cause = (
                "killed: no answer to the health check in "
                f"{self.config.timeout_worker_healthcheck} s"
            )
        elif exitcode is not None and exitcode < 0:
            cause = f"killed by {signal.Signals(-exitcode).name}"
        else:
            cause = f"exited with status {exitcode}"
        lived = time.monotonic() - self._started_at.pop(process.pid or 0, 0.0)
        delay = (
            min(max(2 * self._delay.get(index, 0.0), 1.0), MAX_RESTART_DELAY_SECONDS)
            if lived < QUICK_DEATH_SECONDS
            else 0.0
        )
        self._delay[index] = delay
        self._not_before[index] = time.monotonic() + delay
        logger.error(
            "Worker [%s] died (%s) after %.1f s; a new one starts%s",
            process.pid,
            cause,
            lived,
            f" in {delay:.0f} s" if delay else "",
            extra={"worker_pid": process.pid, "exitcode": exitcode},
        )
        if process.pid is not None:
            forget_worker(process.pid)


def cannot_start(*, served: bool, exitcode: int | None, hung: bool) -> bool:
    """Whether a worker's death says the configuration cannot start: it exited by itself
    before any worker was seen ready. A signal says nothing of the kind: a worker killed (a
    segfault, the OOM killer, kill -9) in the half second between its startup and the
    supervisor's next look is replaced like any other (CI saw exactly that)."""
    killed = hung or (exitcode is not None and exitcode < 0)
    return not served and not killed


def forget_worker(pid: int) -> None:
    """Drop a dead worker's live gauges (connections, rooms) from the samples the workers
    share, as a worker does itself when it stops gracefully (collab/metrics.py): /metrics
    would otherwise add them up until the next start. Its counters stay."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # noqa: PLC0415 (only with metrics on)

        multiprocess.mark_process_dead(pid)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m editor.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (at least 1)")
    parser.add_argument(
        "--no-supervisor",
        action="store_true",
        help="serve in this process, with nothing to restart it (development, tests)",
    )
    parser.add_argument("--ws-max-size", type=int, default=WS_MAX_SIZE)
    parser.add_argument("--ws-ping-interval", type=float, default=20.0)
    parser.add_argument("--ws-ping-timeout", type=float, default=20.0)
    parser.add_argument(
        "--ws-per-message-deflate", action="store_true", help="compress frames (an experiment)"
    )
    parser.add_argument("--access-log", action="store_true", help="one line per request")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        default=GRACEFUL_SHUTDOWN_SECONDS,
        help="seconds open connections get to finish at a stop",
    )
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    if options.no_supervisor and options.workers != 1:
        parser.error("--no-supervisor serves in one process: leave --workers out")
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    # The workers read the same choice through Django's settings.
    os.environ["DJANGO_LOG_FORMAT"] = log_format()
    kwargs = uvicorn_options(
        host=options.host,
        port=options.port,
        workers=options.workers,
        ws_max_size=options.ws_max_size,
        ws_ping_interval=options.ws_ping_interval,
        ws_ping_timeout=options.ws_ping_timeout,
        ws_per_message_deflate=options.ws_per_message_deflate,
        access_log=options.access_log,
        timeout_graceful_shutdown=options.timeout_graceful_shutdown,
    )
    if options.no_supervisor:
        uvicorn.run(APP, **kwargs)  # exits with STARTUP_FAILURE if it cannot start
        return
    config = uvicorn.Config(APP, **kwargs)
    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    if supervisor.failed_to_start:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
