"""Render bench/.cache/results.json (written by run.py) as bench/RESULTS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PEERS = ["yws", "hocus", "pycrdt"]
# Entry frames that every sample shares; left out of the inclusive table.
BOOTSTRAP = tuple(
    f"({f})"
    for f in [
        "<frozen runpy>",
        "__main__.py",
        "main.py",
        "core.py",
        "server.py",
        "_compat.py",
        "runners.py",
        "threading.py",
        "base_events.py",
    ]
)
NAMES = {
    "ours": "**ours**",
    "yws": "@y/websocket-server",
    "hocus": "Hocuspocus",
    "pycrdt": "pycrdt-websocket",
    "ours-deflate": "ours, permessage-deflate on (as before)",
}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(ours: Any, peer: Any) -> str:
    try:
        return f"{float(ours) / float(peer):.2f}×"
    except (TypeError, ValueError, ZeroDivisionError):
        return "–"


def mib(n: float | None) -> str:
    return "–" if n is None else f"{n / 1048576:,.1f} MiB"


def kib(n: float | None) -> str:
    return "–" if n is None else f"{n / 1024:,.1f} KiB"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def kinds(section: dict[str, Any]) -> list[str]:
    return [k for k in ["ours", *PEERS, "ours-deflate"] if k in section]


def err(section: dict[str, Any], kind: str) -> str | None:
    return section[kind].get("error") if isinstance(section.get(kind), dict) else None


def fanout_section(r: dict[str, Any]) -> str:
    sec = r.get("fanout", {})
    if not sec:
        return ""
    p = r["sizes"]["fanout"]
    out = [
        f"## 1. Fan-out latency: 1 document, {p['clients']} clients, {p['writers']} writers\n",
        f"Rates are the total edit rate of the {p['writers']} writers together, "
        f"{p['seconds']} s per rate; "
        "latency is edit → arrival at each of the other clients (every client "
        "receives every edit). "
        "Ratio = ours ÷ peer (below 1 is better for latency). Ours also "
        "persists every update (group commit).\n",
    ]
    rows = []
    for rate_index, rate in enumerate(p["rates"]):
        ours = (
            sec.get("ours", {}).get("phases", [{}] * 9)[rate_index] if not err(sec, "ours") else {}
        )
        for kind in kinds(sec):
            if err(sec, kind):
                rows.append(
                    [
                        f"{rate}/s",
                        NAMES[kind],
                        "error: " + err(sec, kind)[:80],
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
                continue
            ph = sec[kind]["phases"][rate_index]
            lat = ph["latency_ms"]
            olat = ours.get("latency_ms", {})
            rows.append(
                [
                    f"{rate}/s",
                    NAMES[kind],
                    fmt(lat.get("p50"), 2),
                    fmt(lat.get("p99"), 2),
                    fmt(lat.get("max"), 1),
                    f"{ph['missing']} of {ph['expected']:,}",
                    ""
                    if kind.startswith("ours")
                    else f"p50 {ratio(olat.get('p50'), lat.get('p50'))}, "
                    f"p99 {ratio(olat.get('p99'), lat.get('p99'))}",
                    fmt(ph["server_cpu_s"], 2),
                    f"{ph['gen_cpu_frac']:.0%} / {ph['gen_loop_p99_ms']:.1f} ms",
                ]
            )
    out.append(
        table(
            [
                "rate",
                "server",
                "p50 ms",
                "p99 ms",
                "max ms",
                "missing",
                "ours ÷ peer",
                "server CPU s",
                "generator CPU / loop p99",
            ],
            rows,
        )
    )
    return "\n".join(out)


def twogen_section(r: dict[str, Any]) -> str:
    sec = r.get("twogen", {}).get("ours")
    if not sec:
        return ""
    if "error" in sec:
        return f"Generator check failed: {sec['error']}\n"
    single = r.get("fanout", {}).get("ours", {}).get("phases", [])
    one = next((ph for ph in single if ph["rate"] == 200), None)
    rows = []
    if one:
        lat = one["latency_ms"]
        rows.append(
            [
                "one generator (measurement 1)",
                fmt(lat.get("p50"), 2),
                fmt(lat.get("p99"), 2),
                f"{one['missing']}",
                f"{one['gen_cpu_frac']:.0%}",
            ]
        )
    for i, gen in enumerate(sec["generators"]):
        ph = gen["phases"][0]
        lat = ph["latency_ms"]
        rows.append(
            [
                f"two generators: #{i + 1} ({ph['rate']:.0f}/s of its own writers)",
                fmt(lat.get("p50"), 2),
                fmt(lat.get("p99"), 2),
                f"{ph['missing']}",
                f"{ph['gen_cpu_frac']:.0%}",
            ]
        )
    return "\n".join(
        [
            "### Is one generator enough? Measurement 1 on ours at 200/s, two processes\n",
            "Each generator holds half the clients and measures its own writers' deliveries to "
            "its own clients; similar figures mean the single generator was not the limit.\n",
            table(["load", "p50 ms", "p99 ms", "missing", "generator CPU"], rows),
        ]
    )


def top_passed(phases: list[dict[str, Any]], rates: list[int]) -> bool:
    return bool(phases) and phases[-1]["ok"] and phases[-1]["rate"] == rates[-1]


def throughput_section(r: dict[str, Any]) -> str:
    sec = r.get("throughput", {})
    if not sec:
        return ""
    p = r["sizes"]["throughput"]
    out = [
        "## 2. Throughput: highest sustained inbound rate per process\n",
        f"{p['rooms']} documents × {p['clients_per_room']} clients (1 writer "
        "each), rate stepped through "
        f"{', '.join(map(str, p['rates']))} edits/s for {p['seconds']} s "
        "each; a step passes with p99 < "
        f"{p['p99_limit_ms']} ms, nothing missing and the offered rate achieved. "
        "Two failing steps in a row end the ramp; the result is the best passing step."
        + (
            f" The load comes from {p['generators']} generator processes, each with its share "
            "of the documents and of the rate, stepping together (one generator hid the Node "
            "servers' ceiling); p99 is the worse share's, generator CPU is each one's."
            if p.get("generators", 1) > 1
            else ""
        )
        + "\n",
    ]
    best = {k: sec[k].get("max_sustained_rate") for k in kinds(sec) if not err(sec, k)}
    rows = []
    for kind in kinds(sec):
        if err(sec, kind):
            rows.append([NAMES[kind], "error", "", ""])
            continue
        steps = "; ".join(
            f"{ph['rate']}: p99 {fmt(ph['latency_ms'].get('p99'), 1)} ms, {ph['missing']} missing, "
            f"srv CPU {ph['server_cpu_s']:.1f} s, gen "
            + "+".join(f"{f:.0%}" for f in ph.get("gen_cpu_fracs", [ph["gen_cpu_frac"]]))
            + ("" if ph["ok"] else " ✗")
            for ph in sec[kind]["phases"]
        )
        rows.append(
            [
                NAMES[kind],
                # Passing the top step only bounds the ceiling from below.
                ("≥ " if top_passed(sec[kind]["phases"], p["rates"]) else "") + fmt(best.get(kind)),
                ""
                if kind.startswith("ours")
                else ("≤ " if top_passed(sec[kind]["phases"], p["rates"]) else "")
                + ratio(best.get("ours"), best.get(kind)),
                steps,
            ]
        )
    out.append(
        table(
            [
                "server",
                "max sustained edits/s",
                "ours ÷ peer",
                "steps (rate: p99, missing, server CPU, generator CPU)",
            ],
            rows,
        )
    )
    return "\n".join(out)


def scaleout_section(r: dict[str, Any]) -> str:
    sec = r.get("scaleout", {}).get("ours")
    single = r.get("fanout", {}).get("ours")
    if not sec:
        return ""
    if "error" in sec:
        return f"## 3. Scale-out\n\nerror: {sec['error']}\n"
    rows = []
    for i, ph in enumerate(sec["phases"]):
        one = single["phases"][i]["latency_ms"] if single and "phases" in single else {}
        cross = ph.get("cross_process_ms", {})
        same = ph.get("same_process_ms", {})
        rows.append(
            [
                f"{ph['rate']}/s",
                fmt(one.get("p50"), 2),
                fmt(one.get("p99"), 2),
                fmt(same.get("p99"), 2),
                fmt(cross.get("p50"), 2),
                fmt(cross.get("p99"), 2),
                ratio(cross.get("p99"), one.get("p99")),
                f"{ph['missing']} of {ph['expected']:,}",
                fmt(ph["server_cpu_s"], 2),
            ]
        )
    return "\n".join(
        [
            "## 3. Scale-out: two of our processes sharing Redis (pub/sub layer)\n",
            "The load of measurement 1, clients and writers alternated between the two processes; "
            "cross-process = writer and receiver on different processes "
            "(one Redis hop). Same run, same machine.\n",
            table(
                [
                    "rate",
                    "single p50",
                    "single p99",
                    "2-proc same p99",
                    "2-proc cross p50",
                    "2-proc cross p99",
                    "cross p99 ÷ single p99",
                    "missing",
                    "CPU s (both)",
                ],
                rows,
            ),
        ]
    )


def idle_section(r: dict[str, Any]) -> str:
    sec = r.get("idle", {})
    if not sec:
        return ""
    rows = []
    for kind in kinds(sec):
        if err(sec, kind):
            rows.append([NAMES[kind], "error"] + [""] * 6)
            continue
        s = sec[kind]
        after = " → ".join(mib(x) for x in s["rss_after_leave"])
        rows.append(
            [
                NAMES[kind],
                mib(s["rss_baseline"]),
                mib(s["rss_all_connected"]),
                kib(s["per_conn_bytes"]),
                kib(s["per_doc_bytes"]),
                after,
                fmt(s["rss_after_leave"][-1] / s["rss_baseline"], 2) + "×",
                f"{s['open_docs_s']} s / {s['connect_rest_s']} s",
            ]
        )
    p = r["sizes"]["idle"]
    return "\n".join(
        [
            f"## 4. Idle connections: {p['docs'] * p['per_doc']:,} connections "
            f"over {p['docs']} documents\n",
            "RSS of the server process. First one client per document (each "
            "types a 208-character note), "
            f"then {p['per_doc'] - 1} more per document. Per document = "
            "(RSS with documents open − baseline) ÷ documents; "
            "per connection = (RSS all connected − RSS documents open) "
            "÷ extra connections. After leaving: RSS "
            f"{' and '.join(str(ms // 1000) + ' s' for ms in p['after_ms'])} "
            "after every client closed "
            "(our rooms unload 1 s after their last client in this run).\n",
            table(
                [
                    "server",
                    "baseline",
                    "all connected",
                    "per connection",
                    "per open doc",
                    "after leaving",
                    "after ÷ baseline",
                    "open docs / connect rest",
                ],
                rows,
            ),
        ]
    )


STEP2 = "open_to_step2_median_ms"
SYNCED = "open_to_synced_median_ms"


def coldopen_section(r: dict[str, Any]) -> str:
    sec = r.get("coldopen", {})
    if not sec:
        return ""
    setup = r.get("setup", {})
    st = setup.get("b4_storage", {})
    rows = []
    ours = sec.get("ours", {})
    for kind in kinds(sec):
        if err(sec, kind):
            rows.append([NAMES[kind], "error: " + err(sec, kind)[:80], "", "", "", ""])
            continue
        s = sec[kind]
        rows.append(
            [
                NAMES[kind],
                fmt(s.get("open_to_step2_median_ms"), 1),
                fmt(s.get("client_apply_median_ms"), 1),
                fmt(s["open_to_synced_median_ms"], 1),
                ""
                if kind.startswith("ours")
                else f"step2 {ratio(ours.get(STEP2), s.get(STEP2))}, "
                f"synced {ratio(ours.get(SYNCED), s.get(SYNCED))}",
                ", ".join(f"{t.get('open_to_step2', 0):.0f}" for t in s.get("raw_trials", []))
                or "–",
            ]
        )
    sizes = next((sec[k].get("yjs_sizes") for k in kinds(sec) if sec[k].get("yjs_sizes")), {}) or {}
    return "\n".join(
        [
            "## 5. Cold open of the automerge-paper document (259,778 edits, 104,852 characters)\n",
            "Stored for ours as after real editing: the per-edit updates "
            "appended to the log through "
            f"`append_updates` in batches, compacted, then the last {st.get('log_rows', '?')} "
            "edits appended as single rows "
            f"(state {fmt(st.get('state_bytes'))} B + {st.get('log_rows', '?')} "
            "log rows). The peers load the same "
            f"content ({fmt(setup.get('b4_merged_v1_bytes'))} B V1 update) "
            "from a file on every open "
            "(y-websocket-server `bindState`, Hocuspocus `onLoadDocument`, "
            "pycrdt-websocket room creation); "
            "every trial is a cold open (room unloaded in between). Median "
            "of the trials after one discarded warm-up.\n"
            "- *open → step 2*: raw y-protocols client, socket open → the "
            "server's full sync step 2 received (server work + transfer; "
            "Hocuspocus does not speak the plain protocol, so –).\n"
            "- *client apply*: Yjs applying that step 2 in the client (client "
            "cost, same for all).\n"
            "- *open → synced*: stock provider (`y-websocket` / `@hocuspocus/provider`), "
            "socket open → `synced`.\n",
            table(
                [
                    "server",
                    "open → step 2 ms",
                    "client apply ms",
                    "open → synced ms",
                    "ours ÷ peer",
                    "raw trials ms",
                ],
                rows,
            ),
            f"Yjs-encoded size of the loaded document: V1 {fmt(sizes.get('v1'))} "
            f"B, V2 {fmt(sizes.get('v2'))} B.\n",
        ]
    )


def ingest_section(r: dict[str, Any]) -> str:
    sec = r.get("ingest", {}).get("ours")
    setup = r.get("setup", {})
    st = setup.get("b4_storage", {})
    sizes = (
        next(
            (
                v.get("yjs_sizes")
                for v in r.get("coldopen", {}).values()
                if isinstance(v, dict) and v.get("yjs_sizes")
            ),
            {},
        )
        or {}
    )
    out = ["## 6. Durable ingest (ours only: the peers run in memory)\n"]
    if sec and "phases" in sec:
        p = r["sizes"]["ingest"]
        out.append(
            f"{p['docs']} documents × {p['writers_per_doc']} raw Yjs writers "
            f"on `?extensions=1`, {p['seconds']} s per offered rate. "
            "Commit lag = edit sent → the `saved` notice that covers it "
            "(the window of edits a crash could lose "
            "from the server's side); committed/s = edits committed ÷ time "
            "from first send to last notice.\n"
        )
        rows = [
            [
                f"{ph['rate']}/s",
                fmt(ph["achieved_rate"]),
                fmt(ph["committed_per_s"]),
                f"{ph['committed']:,} / {ph['sent']:,}",
                fmt(ph["commit_lag_ms"].get("p50"), 1),
                fmt(ph["commit_lag_ms"].get("p99"), 1),
                fmt(ph["commit_lag_ms"].get("max"), 1),
                fmt(ph["max_outstanding_edits"]),
                fmt(ph["server_cpu_s"], 2),
            ]
            for ph in sec["phases"]
        ]
        out.append(
            table(
                [
                    "offered",
                    "achieved",
                    "committed/s",
                    "committed / sent",
                    "lag p50 ms",
                    "lag p99 ms",
                    "lag max ms",
                    "max uncommitted edits",
                    "server CPU s",
                ],
                rows,
            )
        )
    elif sec:
        out.append(f"error: {sec.get('error')}\n")
    if st:
        stored = st["state_disk_bytes"] + st["log_disk_bytes"]
        raw = st["state_bytes"] + st["log_bytes"]
        out.append(
            "Storage of the automerge-paper document after compaction (state + log tail): "
            f"{fmt(raw)} B as bytes ({fmt(st['state_bytes'])} state + {fmt(st['log_bytes'])} "
            f"in {st['log_rows']} log rows), "
            f"{fmt(stored)} B on disk after PostgreSQL's TOAST compression (`pg_column_size`). "
            f"Ratio to the Yjs encoding: {ratio(raw, sizes.get('v1'))} of "
            f"V1 ({fmt(sizes.get('v1'))} B), "
            f"{ratio(raw, sizes.get('v2'))} of V2 ({fmt(sizes.get('v2'))} "
            f"B); on disk {ratio(stored, sizes.get('v1'))} of V1, "
            f"{ratio(stored, sizes.get('v2'))} of V2. "
            f"Setup: replay {fmt(setup.get('b4_setup', {}).get('replay_s'))} "
            "s, "
            f"append {fmt(setup.get('b4_setup', {}).get('append_s'))} s, "
            f"compact {fmt(setup.get('b4_setup', {}).get('compact_s'))} "
            "s "
            "(when not reused from an earlier run).\n"
        )
    return "\n".join(out)


def eventloop_section(r: dict[str, Any]) -> str:
    sec = r.get("eventloop", {})
    if not sec:
        return ""
    paste_bytes = next(
        (sec[k].get("events", {}).get("paste_update_bytes") for k in kinds(sec) if not err(sec, k)),
        None,
    )
    p = r["sizes"]["eventloop"]
    rows = []
    for kind in kinds(sec):
        if err(sec, kind):
            rows.append([NAMES[kind], "error: " + err(sec, kind)[:80]] + [""] * 6)
            continue
        s = sec[kind]
        w = s["windows"]
        ev = s.get("events", {})
        rows.append(
            [
                NAMES[kind],
                fmt(w["before"].get("p99"), 1),
                fmt(w["paste"].get("p99"), 1),
                fmt(w["paste"].get("max"), 1),
                fmt(w["load"].get("p99"), 1),
                fmt(w["load"].get("max"), 1),
                fmt(ev.get("paste_delivered_ms"), 0),
                fmt(ev.get("b4_open_to_synced_ms"), 0),
                f"{s['missing']}",
            ]
        )
    return "\n".join(
        [
            "## 7. Event-loop health: typing on other documents during a "
            "5 MB paste and a big load\n",
            f"{p['typing_docs']} documents with 1 typist + 1 reader, {p['rate']} "
            f"edits/s in total, {p['seconds']} s. At "
            f"{p['paste_at_s']} s a client pastes {p['paste_bytes'] / 1048576:.0f} "
            "MB of formatted lines into another document "
            f"in one transaction (one update of {fmt(paste_bytes)} "
            f"B, pasted by a stock client); at {p['load_at_s']} s a fresh client "
            "cold-opens the automerge-paper document. "
            "Typing latency p99 per window. **Our per-frame cap is 1 MiB "
            "by default: this run raises "
            "COLLAB_MAX_MESSAGE_BYTES to 16 MiB (and uvicorn --ws-max-size "
            "to 32 MiB) so the paste arrives as one update, as on the peers.**\n",
            table(
                [
                    "server",
                    "before p99 ms",
                    "paste p99 ms",
                    "paste max ms",
                    "load p99 ms",
                    "load max ms",
                    "paste delivered ms",
                    "big open → synced ms",
                    "missing",
                ],
                rows,
            ),
        ]
    )


def throttled_section(r: dict[str, Any]) -> str:
    sec = r.get("throttled", {})
    if not sec:
        return ""
    p = r["sizes"]["throttled"]
    rows = []
    for kind in kinds(sec):
        if err(sec, kind):
            rows.append([NAMES[kind], "error: " + err(sec, kind)[:80]] + [""] * 6)
            continue
        s = sec[kind]
        flood = s["flood"]
        rows.append(
            [
                NAMES[kind],
                fmt(s["alone"]["latency_ms"].get("p99"), 2),
                fmt(s["flooded"]["latency_ms"].get("p99"), 2),
                f"{s['p99_ratio']:.2f}×",
                f"{fmt(flood['offered'])} / {fmt(flood['delivered'])}",
                kib(flood.get("max_buffered_bytes")),
                ", ".join(str(code) for code in flood.get("closes", [])) or "none",
                f"{s['alone']['missing']} / {s['flooded']['missing']}",
            ]
        )
    return "\n".join(
        [
            "## Throttled neighbour (issue 12): another document's latency next to a flood\n",
            f"Document B: {p['clients']} clients, {p['writers']} writers, {p['rate']} edits/s "
            f"in total, {p['seconds']} s, alone and then while a stock client on the same "
            f"process writes {fmt(p['flood_rate'])} updates/s (one keystroke each) into "
            "document A, watched by another client of A. Ours runs with its default budget "
            "(60 updates/s, burst 300): it reads the flooder no faster than that, and TCP "
            "holds the rest back in the flooder's own buffers. The peers have no budget: "
            "they take the whole flood.\n",
            table(
                [
                    "server",
                    "B p99 alone ms",
                    "B p99 next to the flood ms",
                    "ratio",
                    f"flood updates offered / passed on in {p['seconds']} s",
                    "flooder's ws buffer (max)",
                    "flooder closed",
                    "B missing",
                ],
                rows,
            ),
        ]
    )


def profile_section(r: dict[str, Any]) -> str:
    prof = r.get("profile", {})
    if not prof or "stacks" not in prof:
        return ""
    st = prof["stacks"]
    if "error" in st:
        return f"## Profile\n\n{st['error']}\n"
    lines = [
        "## Profile of our server under measurement 1 (py-spy, 200 edits/s)\n",
        f"{st['samples']:,} samples of the server's Python stacks (`--gil`: "
        "only samples where a thread holds the GIL, i.e. Python CPU work); "
        "shares of samples.\n",
        table(
            ["self %", "function (file)"],
            [[fmt(pct), f"`{name}`"] for name, pct in st["self"][:15]],
        ),
        table(
            ["inclusive %", "function (file)"],
            [
                [fmt(pct), f"`{name}`"]
                for name, pct in st["inclusive"]
                if not name.endswith(BOOTSTRAP)
            ][:25],
        ),
    ]
    return "\n".join(lines)


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    v = r.get("versions", {})
    parts = [
        "# Benchmarks: ours side by side with the reference Yjs servers (issue 7)\n",
        "Generated by `make bench` (bench/run.py); raw figures in bench/.cache/results.json. "
        + ("**QUICK run (small sizes), for harness testing only.**\n" if r.get("quick") else "\n"),
        f"Run started {r['started']}, took {r.get('duration_s', '?')} s.\n",
        "**Noise caveat:** one 2-core VM shared with other engineers running "
        "test suites during the run; the server, "
        "the load generator, PostgreSQL and Redis share the same two cores. "
        "Absolute numbers are noisy; the peers were "
        "measured in the same run, one after another, under the same conditions, "
        "so read the ratios.\n",
        "## Machine and versions\n",
        table(["", ""], [[k, f"`{val}`"] for k, val in {**m, **v}.items()]),
        "Peers: `@y/websocket-server` 0.1.5 declares the Yjs v14 prereleases "
        "(`yjs ^14.0.0-7`, `@y/protocols` → "
        "`@y/y`, which does not resolve); bench/package.json `overrides` "
        "run it on yjs 13.6.33 + y-protocols 1.0.6 "
        "(it uses only Doc, sync and awareness APIs that are the same). "
        "Hocuspocus 4.7.0 declares Node ≥ 22; it runs "
        "on Node 20 here. pycrdt-websocket runs in memory under uvicorn "
        "(uvloop, websockets) in bench/.venv-peers. "
        "Ours runs as `make serve` does for one worker (uvicorn, uvloop, "
        "httptools, websockets) with "
        "`REDIS_URL` set (RedisPubSubChannelLayer) and PostgreSQL `editor_bench`, "
        "persisting every update.\n",
        "Load: one Node process (bench/load/loadgen.mjs) drives real Yjs "
        "clients: `y-websocket` 3.1.0 "
        "`WebsocketProvider` (ours, y-websocket-server, pycrdt-websocket), "
        "`@hocuspocus/provider` 4.8.0 (Hocuspocus), "
        "and raw y-protocols clients for frame-exact timing (cold open, saved notices). "
        "**Is the generator the bottleneck?** Every phase reports the generator's "
        "own CPU use (fraction of one core) "
        "and its event-loop delay p99; they are in the tables. A generator "
        "near 100 % of a core or with a loop p99 "
        "comparable to the measured latency would make that row generator-bound.\n",
    ]
    for section in (
        fanout_section,
        twogen_section,
        throughput_section,
        scaleout_section,
        idle_section,
        coldopen_section,
        ingest_section,
        eventloop_section,
        throttled_section,
        profile_section,
    ):
        try:
            text = section(r)
        except Exception as exc:  # a malformed section must not hide the others
            text = f"({section.__name__} could not be rendered: {exc!r})\n"
        if text:
            parts.append(text)
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        parts.append(notes.read_text())
    parts.append("## Exact commands\n\n```\n" + "\n".join(r.get("commands", [])) + "\n```\n")
    parts.append(
        "Trace credit: automerge-paper editing trace by Martin Kleppmann "
        "(automerge/automerge-perf), "
        "via josephg/editing-traces, CC BY 4.0.\n"
    )
    return "\n".join(parts)


if __name__ == "__main__":
    source = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).with_name(".cache") / "results.json"
    )
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("RESULTS.md")
    target.write_text(render(json.loads(source.read_text())))
