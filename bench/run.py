"""`make bench`: every measurement of issue 7, our server side by side with the reference
Yjs servers in the same run, then a py-spy profile of our hot path; writes RESULTS.md.

Servers run one at a time on 127.0.0.1 and are restarted for every scenario, so each
starts from the same state; the Node load generator (load/loadgen.mjs) drives real Yjs
clients and reports JSON. Every process started here is stopped in `finally`.

    .venv/bin/python bench/run.py [--quick] [--only fanout,coldopen] [--servers ours,yws]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/editor_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"

# Sizes: FULL is the issue's; QUICK builds and smoke-tests the harness in about 3 minutes.
FULL: dict[str, dict[str, Any]] = {
    "fanout": {"clients": 50, "writers": 5, "rates": [50, 200], "seconds": 10},
    "throughput": {
        "rooms": 10,
        "clients_per_room": 4,
        "rates": [250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 10000, 12000, 16000, 20000],
        "seconds": 5,
        "p99_limit_ms": 100,
        "generators": 2,
        # Every step's edits, 1 writer per document: 5 s × 82,750/s over 10 writers.
        "max_edits_per_writer": 45_000,
    },
    "scaleout": {"clients": 50, "writers": 5, "rates": [50, 200], "seconds": 10},
    "idle": {"docs": 200, "per_doc": 10, "settle_ms": 3000, "after_ms": [3000, 10000]},
    "coldopen": {"trials": 5, "unload_wait_ms": 2500, "raw": True},
    "ingest": {"docs": 10, "writers_per_doc": 2, "rates": [500, 2000, 4000], "seconds": 6},
    "eventloop": {
        "typing_docs": 5,
        "rate": 50,
        "seconds": 12,
        "paste_at_s": 4,
        "load_at_s": 8,
        "paste_bytes": 5 * 1024 * 1024,
    },
    "profile": {"clients": 50, "writers": 5, "rates": [200], "seconds": 15},
    # Measurement 1 at 200/s split over two generator processes (25 clients, 3 and 2
    # writers at 40 edits/s each): unchanged figures mean one generator is not the limit.
    "twogen": {"clients": 25, "writers": [3, 2], "rates": [200], "seconds": 10},
    # Issue 12: document B typed into at 50 edits/s (2 writers, 8 readers), alone and then
    # next to a client writing 2,000 updates/s into document A on the same process: 33
    # times our default budget of 60, far from the 300 s of backlog that close a flood.
    "throttled": {"clients": 10, "writers": 2, "rate": 50, "seconds": 10, "flood_rate": 2000},
}
QUICK: dict[str, dict[str, Any]] = {
    "fanout": {**FULL["fanout"], "clients": 10, "rates": [50], "seconds": 3},
    "throughput": {**FULL["throughput"], "rooms": 3, "rates": [250, 1000], "seconds": 2},
    "scaleout": {**FULL["scaleout"], "clients": 10, "rates": [50], "seconds": 3},
    "idle": {"docs": 20, "per_doc": 3, "settle_ms": 1000, "after_ms": [2000]},
    "coldopen": {"trials": 2, "unload_wait_ms": 2500, "raw": True},
    "ingest": {**FULL["ingest"], "docs": 2, "rates": [500], "seconds": 2},
    "eventloop": {
        **FULL["eventloop"],
        "typing_docs": 2,
        "seconds": 6,
        "paste_at_s": 2,
        "load_at_s": 4,
        "paste_bytes": 1024 * 1024,
    },
    "profile": {**FULL["profile"], "clients": 10, "seconds": 4},
    "twogen": {**FULL["twogen"], "clients": 5, "seconds": 3},
    "throttled": {**FULL["throttled"], "clients": 4, "seconds": 3},
}
SCENARIOS = [
    "fanout",
    "throughput",
    "scaleout",
    "idle",
    "coldopen",
    "ingest",
    "eventloop",
    "twogen",
    "throttled",
    "profile",
]
PEERS = ["yws", "hocus", "pycrdt"]
ONLY_OURS = {"scaleout", "ingest", "profile", "twogen"}
NAMES = {
    "ours": "ours (uvicorn+Channels+pycrdt+PostgreSQL)",
    "yws": "@y/websocket-server",
    "hocus": "Hocuspocus",
    "pycrdt": "pycrdt-websocket",
}

COMMANDS: list[str] = []
"""Every command line run, in order, for RESULTS.md."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ours_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "editor.settings",
        "DJANGO_SECRET_KEY": SECRET,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "DJANGO_LOG_LEVEL": "WARNING",
        # Short grace period so idle/cold-open phases see rooms unload within the run.
        "COLLAB_ROOM_UNLOAD_DELAY_SECONDS": "1",
        # Load clients type far faster than people: lift the per-socket rate limits
        # (60 updates/s, burst 300 by default) so they measure capacity, not policy.
        # The limiter's own per-frame cost stays on the path.
        "COLLAB_UPDATES_PER_SECOND": "1000000",
        "COLLAB_UPDATES_BURST": "1000000",
        "COLLAB_FRAMES_PER_SECOND": "1000000",
        "COLLAB_FRAMES_BURST": "1000000",
        # Every load client signs in as the one bench user.
        "COLLAB_MAX_SOCKETS_PER_USER": "0",
        # Servers restart for every scenario: the documents a previous scenario edited
        # would otherwise become due for an automatic version (a full document load in
        # the version thread) in the middle of the next measurement.
        "COLLAB_VERSION_IDLE_SECONDS": "3600",
        "COLLAB_VERSION_MAX_SECONDS": "3600",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Server:
    """One server process on a free loopback port; `url` is its WebSocket base."""

    def __init__(self, kind: str, *, b4_room: str, env: dict[str, str] | None = None) -> None:
        # "ours-deflate" is ours with uvicorn's permessage-deflate on (an experiment).
        self.variant = kind
        kind = "ours" if kind.startswith("ours") else kind
        self.kind = kind
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        preload = {
            "PORT": str(self.port),
            "PRELOAD_ROOM": b4_room,
            "PRELOAD_FILE": str(CACHE / "b4.bin"),
        }
        ws_max = (env or {}).get("WS_MAX_SIZE", "4194304")
        if kind == "ours":
            # `make serve`'s flags (editor/serve.py), in the measured process itself: the
            # load generator samples this pid's CPU and memory, and py-spy attaches to it.
            self.argv = [
                str(PROJECT_PYTHON),
                "-m",
                "editor.serve",
                "--no-supervisor",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws-max-size",
                ws_max,
            ]
            # `make serve` turns permessage-deflate off; "ours-deflate" measures it on.
            if self.variant == "ours-deflate":
                self.argv.append("--ws-per-message-deflate")
            self.env = ours_env(**(env or {}))
        elif kind == "pycrdt":
            self.argv = [str(PEERS_PYTHON), str(BENCH / "peers" / "pycrdt_server.py")]
            self.env = {**os.environ, **preload, **(env or {})}
        else:
            script = "yws_server.mjs" if kind == "yws" else "hocuspocus_server.mjs"
            self.argv = ["node", str(BENCH / "peers" / script)]
            self.env = {**os.environ, **preload, **(env or {})}
        if kind == "ours":
            self.env.update({k: v for k, v in preload.items() if k != "PORT"})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Server:
        shown = {k: v for k, v in self.env.items() if k.startswith(("COLLAB_", "WS_MAX"))}
        prefix = " ".join(f"{k}={v}" for k, v in shown.items())
        COMMANDS.append(f"{prefix} {shlex.join(self.argv)}".strip())
        logfile = open(CACHE / f"server-{self.kind}.log", "ab")  # noqa: SIM115 (owned by the process)
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=logfile, stderr=subprocess.STDOUT
        )
        logfile.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited; see {CACHE}/server-{self.kind}.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.5)  # let it finish its startup after binding
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.kind} did not listen within {timeout}s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "pid": self.pid}

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.kind == "pycrdt":
            # In memory, nothing to flush, and its shutdown hangs on SIGTERM until the
            # 15 s timeout below: not worth waiting for.
            self.process.kill()
            self.process.wait(10)
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


RUNNING: list[Server] = []


def start(kind: str, setup: dict[str, Any], env: dict[str, str] | None = None) -> Server:
    server = Server(kind, b4_room=setup["b4"], env=env)
    RUNNING.append(server)
    return server.start()


def vacuum() -> None:
    """What autovacuum does on a default PostgreSQL, before each of our runs: this
    machine's server runs with it off, and a scenario's hundreds of thousands of log
    rows left the planner's statistics so stale that the next cold open seq-scanned the
    whole log (23 ms instead of 1 for the automerge-paper document's 400 rows)."""
    import psycopg  # noqa: PLC0415 (the project's venv, which runs this script, has it)

    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) documents_documentupdate, documents_document")


def stop_all() -> None:
    while RUNNING:
        RUNNING.pop().stop()


def generators(
    scenario: str,
    server: Server,
    setup: dict[str, Any],
    shares: list[tuple[list[str], dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Run one generator process per (documents, params) share at once against `server`;
    their results, in order."""
    procs = []
    for docs, share in shares:
        config = {
            "scenario": scenario,
            "servers": [server.describe()],
            "cookie": setup["cookie"],
            "docs": docs,
            "b4": setup["b4"],
            "params": share,
        }
        COMMANDS.append(
            "node bench/load/loadgen.mjs "
            + shlex.quote(json.dumps({"scenario": scenario, "params": share, "...": "&"}))
        )
        argv = ["node", str(BENCH / "load" / "loadgen.mjs"), json.dumps(config)]
        procs.append(
            subprocess.Popen(argv, cwd=BENCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        sys.stderr.write(err.decode())
        if proc.returncode != 0:
            raise RuntimeError(f"generator failed: {err.decode()[-2000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def two_generators(
    server: Server, setup: dict[str, Any], doc: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Measurement 1 driven by two generator processes at once on the same document;
    each measures the deliveries of its own writers to its own clients (one clock)."""
    total = sum(params["writers"])
    shares = [
        (
            [doc],
            {
                **params,
                "writers": writers,
                "rates": [rate * writers / total for rate in params["rates"]],
            },
        )
        for writers in params["writers"]
    ]
    return generators("fanout", server, setup, shares)


def split_throughput(
    server: Server, setup: dict[str, Any], docs: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Measurement 2 driven by `params["generators"]` generator processes, each with its
    share of the documents and of every step's rate, all starting their steps at one
    wall-clock time: one generator reached 93 % of a core at 8,000 edits/s against the Node
    servers, hiding their ceiling. A step passes when every share passes it; the ramp ends
    at two failing steps in a row, as with one generator."""
    count = params["generators"]
    start_at = int((time.time() + 10) * 1000)  # after every generator has connected
    shares = [
        (
            share_docs,
            {
                **params,
                "rooms": len(share_docs),
                "rates": [rate * len(share_docs) / len(docs) for rate in params["rates"]],
                "start_at": start_at,
            },
        )
        for share_docs in (docs[i::count] for i in range(count))
    ]
    parts = [result["phases"] for result in generators("throughput", server, setup, shares)]
    phases = []
    best = failures = 0
    for index, rate in enumerate(params["rates"]):
        steps = [part[index] for part in parts if index < len(part)]
        if not steps:
            break
        complete = len(steps) == count
        phase = {
            "rate": rate,
            "sent": sum(step["sent"] for step in steps),
            "achieved_rate": sum(step["achieved_rate"] for step in steps),
            "missing": sum(step["missing"] for step in steps),
            # The worst share's percentiles: the shares' samples are not merged.
            "latency_ms": {
                key: max(step["latency_ms"].get(key, 0) for step in steps)
                for key in ("p50", "p95", "p99", "max")
            },
            # The generators meter the same server over the same seconds: their mean.
            "server_cpu_s": round(sum(step["server_cpu_s"] for step in steps) / len(steps), 2),
            "gen_cpu_frac": max(step["gen_cpu_frac"] for step in steps),
            "gen_cpu_fracs": [step["gen_cpu_frac"] for step in steps],
            "ok": complete and all(step["ok"] for step in steps),
        }
        phases.append(phase)
        failures = 0 if phase["ok"] else failures + 1
        if phase["ok"]:
            best = rate
        if failures >= 2 or not complete:
            break
    return {"phases": phases, "max_sustained_rate": best, "generators": count}


def loadgen(
    scenario: str,
    servers: list[Server],
    setup: dict[str, Any],
    docs: list[str],
    params: dict[str, Any],
) -> dict[str, Any]:
    config = {
        "scenario": scenario,
        "servers": [s.describe() for s in servers],
        "cookie": setup["cookie"],
        "docs": docs,
        "b4": setup["b4"],
        "params": params,
    }
    argv = ["node", str(BENCH / "load" / "loadgen.mjs"), json.dumps(config)]
    COMMANDS.append(
        "node bench/load/loadgen.mjs "
        + shlex.quote(
            json.dumps({"scenario": scenario, "params": params, "...": "ids, urls, pids"})
        )
    )
    done = subprocess.run(argv, cwd=BENCH, capture_output=True, text=True, timeout=600)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {scenario} on {servers[0].kind} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Docs:
    """Hands out fresh document ids so no scenario inherits another's content."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.next = 0

    def take(self, n: int) -> list[str]:
        taken = self.ids[self.next : self.next + n]
        if len(taken) < n:
            raise RuntimeError("not enough bench documents; raise --docs")
        self.next += n
        return taken


def setup_database(n_docs: int) -> dict[str, Any]:
    CACHE.mkdir(exist_ok=True)
    exists = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname='editor_bench'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", "editor_bench"], check=True
        )
    env = ours_env()
    subprocess.run(
        [str(PROJECT_PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    argv = [
        str(PROJECT_PYTHON),
        str(BENCH / "setup_db.py"),
        "--docs",
        str(n_docs),
        "--b4-file",
        str(CACHE / "b4.bin"),
    ]
    COMMANDS.append(shlex.join(argv).replace(str(ROOT) + "/", ""))
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def profile_ours(setup: dict[str, Any], docs: Docs, params: dict[str, Any]) -> dict[str, Any]:
    """py-spy samples our server while it serves the fan-out load (no native frames)."""
    server = start("ours", setup)
    out = CACHE / "profile-fanout.txt"
    seconds = params["seconds"] + 1
    spy_argv = [
        str(BENCH / ".venv-peers" / "bin" / "py-spy"),
        "record",
        "--gil",
        "--format",
        "raw",
        "--rate",
        "200",
        "-d",
        str(seconds),
        "-o",
        str(out),
        "-p",
        str(server.pid),
    ]
    COMMANDS.append(shlex.join(spy_argv).replace(str(ROOT) + "/", ""))
    spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = loadgen("fanout", [server], setup, docs.take(1), params)
        spy.wait(seconds + 30)
    finally:
        if spy.poll() is None:
            spy.terminate()
        stop_all()
    return {"load": result, "stacks": summarize_profile(out)}


def summarize_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    if not path.exists():
        return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def share(table: dict[str, int], limit: int = top) -> list[tuple[str, float]]:
        return [
            (name, round(100 * n / total, 1))
            for name, n in sorted(table.items(), key=lambda kv: -kv[1])[:limit]
        ]

    return {"samples": total, "self": share(own), "inclusive": share(inclusive, 60)}


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": mem,
        "kernel": platform.release(),
        "loadavg_at_start": " ".join(load),
    }


def versions() -> dict[str, str]:
    def run(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()

    node_pkgs = json.loads(run(["npm", "ls", "--json", "--prefix", str(BENCH)]) or "{}").get(
        "dependencies", {}
    )
    found = {f"npm {name}": info.get("version", "?") for name, info in node_pkgs.items()}
    ours = run(
        [
            str(PROJECT_PYTHON),
            "-c",
            "import importlib.metadata as m;print(';'.join(f'{p}='+m.version(p) "
            "for p in ['Django','channels','channels-redis','pycrdt','uvicorn','websockets',"
            "'uvloop','psycopg','redis']))",
        ]
    )
    peers = run(
        [
            str(PEERS_PYTHON),
            "-c",
            "import importlib.metadata as m;print(';'.join(f'{p}='+m.version(p) "
            "for p in ['pycrdt-websocket','pycrdt','uvicorn','websockets']))",
        ]
    )
    return {
        "node": run(["node", "--version"]),
        "python": platform.python_version(),
        "postgres": run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"]
        ),
        "redis": run(["redis-cli", "INFO", "server"]).split("redis_version:")[-1].split()[0]
        if run(["redis-cli", "PING"])
        else "?",
        "git": run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "ours": ours,
        "peers (bench/.venv-peers)": peers,
        **found,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, to smoke-test the harness"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(["ours", *PEERS, "ours-deflate"]))
    parser.add_argument("--docs", type=int, default=320)
    parser.add_argument("--json", type=Path, default=CACHE / "results.json")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument(
        "--merge", action="store_true", help="update the scenarios run in an existing --json"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    wanted = [s for s in SCENARIOS if s in args.only.split(",")]
    kinds = args.servers.split(",")
    started = time.time()
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "sizes": sizes,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        log("preparing the bench database (the automerge-paper document is built once and kept)")
        setup = setup_database(args.docs)
        results["setup"] = {k: v for k, v in setup.items() if k not in ("docs", "cookie")}
        docs = Docs(setup["docs"])
        idle_docs = docs.take(sizes["idle"]["docs"])
        for scenario in wanted:
            results[scenario] = {}
            if scenario == "profile":
                if "ours" in kinds:
                    log("profile: py-spy on our server under the fan-out load")
                    results["profile"] = profile_ours(setup, docs, sizes["profile"])
                continue
            for kind in kinds:
                if scenario in ONLY_OURS and not kind.startswith("ours"):
                    continue
                if kind == "ours-deflate" and scenario not in ("fanout", "idle"):
                    continue
                if kind.startswith("ours"):
                    vacuum()
                log(f"{scenario}: {kind}")
                params = sizes[scenario]
                try:
                    if scenario == "twogen":
                        server = start("ours", setup)
                        results[scenario][kind] = {
                            "generators": two_generators(server, setup, docs.take(1)[0], params)
                        }
                    elif scenario == "scaleout":
                        pair = [start("ours", setup), start("ours", setup)]
                        results[scenario][kind] = loadgen(
                            "fanout", pair, setup, docs.take(1), params
                        )
                    elif scenario == "idle":
                        results[scenario][kind] = loadgen(
                            "idle", [start(kind, setup)], setup, idle_docs, params
                        )
                    elif scenario == "throttled":
                        # Ours with its default budgets (editor/settings.py), which the
                        # other scenarios lift: this one measures the throttle.
                        env = (
                            {
                                "COLLAB_UPDATES_PER_SECOND": "60",
                                "COLLAB_UPDATES_BURST": "300",
                                "COLLAB_FRAMES_PER_SECOND": "1000",
                                "COLLAB_FRAMES_BURST": "3000",
                            }
                            if kind == "ours"
                            else None
                        )
                        results[scenario][kind] = loadgen(
                            "throttled", [start(kind, setup, env)], setup, docs.take(2), params
                        )
                    elif scenario == "eventloop":
                        # Our frame cap is 1 MiB by default; this run raises it so the 5 MB
                        # paste arrives as one update, as it does on the peers.
                        env = (
                            {
                                "COLLAB_MAX_MESSAGE_BYTES": str(16 << 20),
                                "WS_MAX_SIZE": str(32 << 20),
                            }
                            if kind in ("ours", "ours-deflate", "pycrdt")
                            else None
                        )
                        server = start(kind, setup, env)
                        results[scenario][kind] = loadgen(
                            "eventloop",
                            [server],
                            setup,
                            docs.take(1 + params["typing_docs"]),
                            params,
                        )
                    else:
                        n = {
                            "fanout": 1,
                            "throughput": params.get("rooms", 1),
                            "ingest": params.get("docs", 1),
                            "coldopen": 0,
                        }[scenario]
                        if params.get("generators", 1) > 1:
                            results[scenario][kind] = split_throughput(
                                start(kind, setup), setup, docs.take(n), params
                            )
                        else:
                            results[scenario][kind] = loadgen(
                                scenario, [start(kind, setup)], setup, docs.take(n), params
                            )
                except Exception as exc:  # one failing peer must not lose the others' figures
                    log(f"{scenario} on {kind} failed: {exc}")
                    results[scenario][kind] = {"error": str(exc)[-500:]}
                finally:
                    stop_all()
        results["versions"] = versions()
    finally:
        stop_all()
    results["commands"] = COMMANDS
    results["duration_s"] = round(time.time() - started)
    if args.merge and args.json.exists():
        # A partial rerun: keep the earlier run's other scenarios, say what was added.
        base = json.loads(args.json.read_text())
        for k in wanted:
            if k in results:
                # Per server, so a rerun of one server or variant keeps the others.
                target = base.setdefault(k, {})
                if k == "profile" or not isinstance(target, dict):
                    base[k] = results[k]
                else:
                    target.update(results[k])
        base["sizes"].update({k: sizes[k] for k in wanted})
        base["commands"] += ["# added later with --merge:", *COMMANDS]
        base.setdefault("merged", []).append(
            {"scenarios": wanted, "started": results["started"], "machine": results["machine"]}
        )
        results = base
    args.json.write_text(json.dumps(results, indent=1))
    from report import render  # noqa: PLC0415 (bench/ is not a package)

    args.out.write_text(render(results))
    log(f"wrote {args.out} in {results['duration_s']} s")


if __name__ == "__main__":
    # SIGTERM (and SIGINT, which a background job ignores) end the run through the
    # `finally` blocks, so no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(BENCH))
    main()
