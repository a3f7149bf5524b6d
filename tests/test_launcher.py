"""editor/serve.py, the one place that starts uvicorn (the restart of a dead worker under
`make serve` is tested end to end in tests/e2e/test_serve.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from editor.serve import JSON_LOG_CONFIG, WS_PROTOCOL, cannot_start, parse, uvicorn_options
from tests.e2e.servers import ROOT, free_port


def test_the_flags_make_serve_runs_with() -> None:
    options = uvicorn_options(host="127.0.0.1", port=8000, workers=2)
    assert options | {"log_config": None} == {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 2,
        "loop": "uvloop",
        "http": "httptools",
        "ws": WS_PROTOCOL,
        "ws_max_size": 4 * 1024 * 1024,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "ws_per_message_deflate": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "access_log": False,
        "log_config": None,
    }


def test_json_logs_take_uvicorns_lines_through_the_same_formatter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_LOG_FORMAT", "json")
    assert uvicorn_options(host="h", port=1)["log_config"] == str(JSON_LOG_CONFIG)
    monkeypatch.setenv("DJANGO_LOG_FORMAT", "plain")
    assert uvicorn_options(host="h", port=1)["log_config"] != str(JSON_LOG_CONFIG)
    # Unset, it follows DJANGO_DEBUG as the settings do.
    monkeypatch.delenv("DJANGO_LOG_FORMAT")
    monkeypatch.setenv("DJANGO_DEBUG", "true")
    assert uvicorn_options(host="h", port=1)["log_config"] != str(JSON_LOG_CONFIG)
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    assert uvicorn_options(host="h", port=1)["log_config"] == str(JSON_LOG_CONFIG)


def test_one_process_without_a_supervisor_takes_no_worker_count() -> None:
    with pytest.raises(SystemExit):
        parse(["--no-supervisor", "--workers", "2"])
    with pytest.raises(SystemExit):
        parse(["--workers", "0"])


def test_a_configuration_that_cannot_start_stops_the_supervisor() -> None:
    # Without a secret key a production start fails in every worker: restarting them
    # forever would hide that behind a loop of tracebacks.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="editor.settings", DJANGO_DEBUG="false")
    finished = subprocess.run(
        [sys.executable, "-m", "editor.serve", "--port", str(free_port()), "--workers", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert finished.returncode == 3, finished.stderr.decode()[-2000:]
    assert b"before any worker started; stopping" in finished.stderr


def test_only_a_worker_that_exits_by_itself_before_any_started_stops_the_service() -> None:
    assert cannot_start(served=False, exitcode=1, hung=False)
    assert cannot_start(served=False, exitcode=3, hung=False)
    # Killed before the supervisor's next health check saw it ready: replaced.
    assert not cannot_start(served=False, exitcode=-signal.SIGSEGV, hung=False)
    assert not cannot_start(served=False, exitcode=-signal.SIGKILL, hung=False)
    assert not cannot_start(served=False, exitcode=-signal.SIGKILL, hung=True)
    assert not cannot_start(served=True, exitcode=1, hung=False)
