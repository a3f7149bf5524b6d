"""A real two-agent editing trace, replayed live at machine speed through two server
processes: every agent is slowed to its update budget, none is closed, all converge.

The trace is `friendsforever` from josephg/editing-traces (../shared/traces), by Joseph
Gentle and contributors, under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/):
two people typing into one document at once with 1 s of artificial latency, 26,078
single-keystroke transactions.

Each agent is a live client, as a script or an agent writing through a Yjs provider is:
it sends one update frame per transaction, as fast as its socket takes them, and it
applies whatever the server relays as it comes. It may make a transaction only once its
replica holds what the transaction saw (the trace's `parents`), so it waits for the other
agents' work to be relayed to it, through the other process for agent 0. Each
transaction's update is made beforehand, by replaying the trace offline in pycrdt, so that
positions in the trace (which refer to exactly the merged parents) stay right whatever
else has arrived live.

Each agent makes 12,000-14,000 transactions: at machine speed that is far above any budget,
so the servers run with a budget of `RATE` updates a second (60 by default; raised so
that the replay fits in half a minute) and the default burst and flood limit. Before
throttling, a server closed an agent with 4429 within seconds. The servers ping every
`PING` seconds with as short a timeout, far less than the backlog that builds up in front
of the agents' pongs: the protocol waits for them (collab/websocket_protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from documents.models import Document
from tests.convergence.conftest import (
    Peers,
    Servers,
    session_cookie,
    state_vector_of,
    stored_update,
    wait_until,
)
from tests.convergence.peers import (
    STEP1,
    STEP2,
    SYNC,
    UPDATE,
    ClientLoop,
    decode_state_vector,
    read_var_bytes,
    read_var_uint,
    sync_frame,
)
from tests.e2e.servers import ServerProcess

pytestmark = [pytest.mark.convergence, pytest.mark.django_db(transaction=True)]

TRACE = Path(__file__).resolve().parents[3] / "shared" / "traces" / "friendsforever.json.gz"
CLIENT_ID_BASE = 1000
RATE = 500
BURST = 300
"""The default burst (COLLAB_UPDATES_BURST)."""
PING = "2"


@dataclass(frozen=True, slots=True)
class Step:
    update: bytes
    needs: dict[int, int]
    """The other agents' clocks the transaction saw: it waits for them."""


def load_trace() -> dict[str, Any]:
    with gzip.open(TRACE) as raw:
        return json.load(raw)


def plan(trace: dict[str, Any]) -> list[list[Step]]:
    """Each agent's transactions as the updates it makes, replayed offline: an agent's
    replica holds exactly the merge of a transaction's parents when it makes it."""
    txns, agents = trace["txns"], trace["numAgents"]
    # Concurrent inserts at one place are ordered by client id; endContent has them in
    # agent order (checked: this replay reads exactly endContent).
    docs = [Doc(client_id=CLIENT_ID_BASE + agent) for agent in range(agents)]
    texts = [doc.get("text", type=Text) for doc in docs]
    made: list[list[bytes]] = [[] for _ in range(agents)]
    steps: list[list[Step]] = [[] for _ in range(agents)]
    applied = [[0] * agents for _ in range(agents)]
    """applied[a][o]: how many of agent o's transactions agent a's replica holds."""
    position: list[int] = []
    """Each transaction's index among its agent's own."""
    versions: list[list[int]] = []
    """For each transaction, the last transaction of every agent it saw (-1: none)."""
    made_now: list[bytes] = []
    for doc in docs:
        doc.observe(lambda event: made_now.append(event.update))
    for index, txn in enumerate(txns):
        me = txn["agent"]
        position.append(len(made[me]))
        version = [-1] * agents
        for parent in txn["parents"]:
            version = [max(a, b) for a, b in zip(version, versions[parent], strict=True)]
        doc = docs[me]
        for other in range(agents):
            if other != me and version[other] >= 0:
                upto = position[version[other]] + 1
                with doc.transaction():
                    for update in made[other][applied[me][other] : upto]:
                        doc.apply_update(update)
                applied[me][other] = max(applied[me][other], upto)
        seen = decode_state_vector(doc.get_state())
        needs = {client: clock for client, clock in seen.items() if client != doc.client_id}
        made_now.clear()
        with doc.transaction():
            for pos, deleted, inserted in txn["patches"]:
                if deleted:
                    del texts[me][pos : pos + deleted]
                if inserted:
                    texts[me].insert(pos, inserted)
        made[me].append(made_now[-1])
        steps[me].append(Step(made_now[-1], needs))
        version[me] = index
        versions.append(version)
    return steps


class LiveAgent:
    """A pycrdt replica on a socket: sends its steps as fast as they may go, applies
    everything relayed to it, and records how its socket ended if the server closed it."""

    def __init__(self, index: int, server: ServerProcess, room: str, cookie: str) -> None:
        self.index = index
        self.server, self.room, self.cookie = server, room, cookie
        self.doc = Doc(client_id=CLIENT_ID_BASE + index)
        self.ws: ClientConnection | None = None
        self.changed = asyncio.Event()
        self.closed_by_server: tuple[int | None, str] | None = None
        self.team: list[LiveAgent] = [self]
        """Every agent of the replay: one that was closed stops the others' waits."""
        self._reader: asyncio.Task[None] | None = None
        self._leaving = False

    async def open(self) -> None:
        self.ws = await connect(
            f"{self.server.ws_url}/{self.room}",
            origin=self.server.http_url,  # type: ignore[arg-type]
            additional_headers={"Cookie": self.cookie},
            compression=None,
            max_size=None,
            proxy=None,
            ping_interval=None,
        )
        self._reader = asyncio.ensure_future(self._read())
        await self.ws.send(sync_frame(STEP1, self.doc.get_state()))

    async def _read(self) -> None:
        assert self.ws is not None
        # Iterating ends on a 1000/1001 close and raises on any other (4429, 1011).
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                assert isinstance(message, bytes)
                kind, pos = read_var_uint(message, 0)
                if kind != SYNC:
                    continue
                step, pos = read_var_uint(message, pos)
                payload, _ = read_var_bytes(message, pos)
                if step == STEP1:
                    await self.ws.send(sync_frame(STEP2, self.doc.get_update(payload)))
                else:
                    self.doc.apply_update(payload)
                    self.changed.set()
        if not self._leaving:
            self.closed_by_server = (self.ws.close_code, self.ws.close_reason or "")
            for agent in self.team:
                agent.changed.set()

    def any_closed(self) -> bool:
        return any(agent.closed_by_server is not None for agent in self.team)

    def holds(self, needs: dict[int, int]) -> bool:
        state = decode_state_vector(self.doc.get_state())
        return all(state.get(client, 0) >= clock for client, clock in needs.items())

    async def write(self, steps: list[Step]) -> None:
        assert self.ws is not None
        for step in steps:
            while not self.holds(step.needs):
                if self.any_closed():
                    return
                self.changed.clear()
                await self.changed.wait()
            self.doc.apply_update(step.update)
            try:
                # Returns once the frame is in the socket's buffers: TCP slows this
                # down when the server holds the socket back.
                await self.ws.send(sync_frame(UPDATE, step.update))
            except ConnectionClosed:
                return  # the reader records how

    async def close(self) -> None:
        self._leaving = True
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@pytest.mark.timeout(180)
def test_a_real_trace_at_machine_speed_is_slowed_never_closed_and_converges(
    servers: Servers, peers: Peers, client_loop: ClientLoop, alice: AbstractUser
) -> None:
    trace = load_trace()
    steps = plan(trace)
    env = {"COLLAB_UPDATES_PER_SECOND": str(RATE), "COLLAB_UPDATES_BURST": str(BURST)}
    ping = ["--ws-ping-interval", PING, "--ws-ping-timeout", PING]
    pair = [servers("throttle-a", env=env, args=ping), servers("throttle-b", env=env, args=ping)]
    document = Document.objects.create(owner=alice, title="friendsforever")
    room, cookie = str(document.pk), session_cookie(alice)
    # Agent 0, who makes more than half of the transactions, alone on process A: the
    # others see its work only through the channel layer, and it theirs.
    agents = [
        LiveAgent(index, pair[0] if index == 0 else pair[1], room, cookie)
        for index in range(trace["numAgents"])
    ]
    for agent in agents:
        agent.team = agents
    union: dict[int, int] = {}

    async def replay() -> float:
        for agent in agents:
            await agent.open()
        started = time.monotonic()
        await asyncio.gather(
            *(agent.write(mine) for agent, mine in zip(agents, steps, strict=True))
        )
        for agent in agents:
            mine = decode_state_vector(agent.doc.get_state())
            union[agent.doc.client_id] = mine.get(agent.doc.client_id, 0)
        # Everyone's replica reaches everything, through both processes.
        async with asyncio.timeout(60):
            for agent in agents:
                while not agent.holds(union) and not agent.any_closed():
                    agent.changed.clear()
                    await agent.changed.wait()
        took = time.monotonic() - started
        for agent in agents:
            await agent.close()
        return took

    took = client_loop.run(replay(), timeout=150)
    closes = {agent.index: agent.closed_by_server for agent in agents if agent.closed_by_server}
    assert not closes, f"the servers closed agents' sockets: {closes}"
    end = trace["endContent"]
    for agent in agents:
        assert str(agent.doc.get("text", type=Text)) == end, f"agent {agent.index} diverged"
    # Slowed to the budget: agent 0's transactions past the burst took at least this long.
    slowest = len(steps[0])
    assert took >= (slowest - BURST) / RATE
    wait_until(
        lambda: state_vector_of(stored_update(document.pk)) == union,
        timeout=30,
        what="the database to hold every agent's work",
    )
    stored = Doc()
    stored.apply_update(stored_update(document.pk))
    assert str(stored.get("text", type=Text)) == end
    for server in pair:
        fresh = peers.py(f"fresh-{server.name}")
        fresh.connect(server, room, cookie)
        assert fresh.loop.call(lambda f=fresh: str(f.doc.get("text", type=Text))) == end
    print(
        f"\nfriendsforever: {len(trace['txns'])} txns from {trace['numAgents']} live agents "
        f"({', '.join(str(len(mine)) for mine in steps)} updates), budget {RATE}/s: "
        f"{took:.1f}s (agent 0's budget alone: {(slowest - BURST) / RATE:.1f}s); "
        f"no socket closed; stored text == endContent ({len(end)} chars)"
    )
