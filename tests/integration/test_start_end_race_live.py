"""Start, reload, end and an agent's late join, in any order, never break the user's next start.

A real livekit-server and a real example-agent worker whose join is delayed on purpose
(``ONBOARDING_AGENT_JOIN_DELAY``), so every session is ended before its agent arrives. Each
trial: start (and join) -> maybe reload -> end (by the owner, staff, the host's code or the
CLI) before the agent joined -> start again at once, or after the late agent had its chance
-> join. Two app hosts share the LiveKit server (and Redis, as a deployment with several
hosts does): starts and ends land on either. The user's next start must answer 201 within the
request timeout, in one room carrying this deployment's envelope, with exactly one agent
(the dispatched name), and every room the trial left behind must be one the library lists.

Interleavings: ender (owner, staff, host, cli) x restart (at once, after the late agent) x
reload (yes, no) x hosts (one, two) = 32; the full cross product with both policies and modes
(128 trials of about ten seconds) is too slow, so for each policy (``resume``, ``new``) and
creation mode (``eager``, ``on_join``) ``TRIALS`` = 6 run: every ender and both restart
timings, reload and the second host drawn with ``SEED``; 24 trials in all. Six tries miss
a race that shows one time in three with probability (2/3)^6, under 9%; across the four
combinations a race common to all of them is missed with probability under 0.01%.

A worker with a job still waiting to join a session that ended stops within its drain bound
on SIGTERM, and the ended room stays closed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from livekit import api, rtc

from examples.agent.runner import AgentWorker, AgentWorkerError, ensure_agent_env
from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.claims import squatter
from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port
from flask_livekit_onboarding.marks import ENDED_ROOM
from flask_livekit_onboarding.state import get_state
from tests.conftest import HostUsers
from tests.integration.agent_support import ChatClient, close_rooms
from tests.integration.conftest import _unavailable

pytestmark = pytest.mark.integration

#: Its own agent name: only this module's apps dispatch the late worker.
LATE_AGENT = "late-onboarding-agent"
#: Seconds the late worker's jobs wait before they join.
JOIN_DELAY = 2.0
SEED = 20261129
TRIALS = 6
ENDERS = ("owner", "staff", "host", "cli")
RESTARTS = ("at-once", "after-late-agent")
STAFF = "staff-race"


@dataclass(frozen=True)
class Interleaving:
    ender: str
    restart: str
    reload: bool
    two_hosts: bool


def interleavings(index: int) -> list[Interleaving]:
    """The ``TRIALS`` interleavings of combination ``index``: every ender and both restart
    timings, with reload and the second host drawn from a generator seeded with ``SEED``."""
    draw = random.Random(SEED + index)
    return [
        Interleaving(
            ENDERS[(trial + index) % len(ENDERS)],
            RESTARTS[trial % len(RESTARTS)],
            reload=draw.random() < 0.5,
            two_hosts=draw.random() < 0.5,
        )
        for trial in range(TRIALS)
    ]


COMBINATIONS = [
    (policy, mode, index)
    for index, (policy, mode) in enumerate(
        itertools.product(("resume", "new"), ("eager", "on_join"))
    )
]


@pytest.fixture(scope="module")
def late_worker(
    livekit_server: LiveKitDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    try:
        python = ensure_agent_env()
    except AgentWorkerError as exc:
        _unavailable(f"no environment for the example agent: {exc}")
    worker = AgentWorker(
        livekit_server.url,
        livekit_server.api_key,
        livekit_server.api_secret,
        agent_name=LATE_AGENT,
        python=python,
        log_path=tmp_path_factory.mktemp("agent") / "late-agent.log",
        env={"ONBOARDING_AGENT_JOIN_DELAY": str(JOIN_DELAY)},
    )
    try:
        worker.start()
    except AgentWorkerError as exc:
        _unavailable(f"the late agent worker did not start: {exc}")
    yield worker
    worker.stop()


async def agents_in(server: LiveKitDevServer, name: str) -> list[api.ParticipantInfo]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        try:
            response = await lk.room.list_participants(api.ListParticipantsRequest(room=name))
        except api.TwirpError:
            return []
    return [p for p in response.participants if p.kind == api.ParticipantInfo.Kind.AGENT]


async def live_rooms(server: LiveKitDevServer, names: set[str]) -> list[api.Room]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        response = await lk.room.list_rooms(api.ListRoomsRequest(names=sorted(names)))
    return list(response.rooms)


class Trial:
    """One user's start -> (reload) -> end -> start again, on one or two app hosts."""

    def __init__(
        self,
        hosts: tuple[Flask, Flask],
        extension: LiveKitOnboarding,
        users: HostUsers,
        server: LiveKitDevServer,
        plan: Interleaving,
    ) -> None:
        self.hosts, self.extension, self.users, self.server, self.plan = (
            hosts,
            extension,
            users,
            server,
            plan,
        )
        self.identity = f"race-{secrets.token_hex(4)}"
        self.names: set[str] = set()

    def host(self, step: int) -> Flask:
        return self.hosts[step % 2] if self.plan.two_hosts else self.hosts[0]

    def start(self, step: int) -> dict[str, Any]:
        self.users.current = Identity(identity=self.identity, name="Ada Lovelace")
        app = self.host(step)
        timeout = get_state(app).config.request_timeout
        began = time.monotonic()
        response = app.test_client().post("/livekit/token", json={})
        took = time.monotonic() - began
        assert response.status_code == 201, (self.plan, response.get_json())
        assert took < timeout, (self.plan, took)
        body: dict[str, Any] = response.get_json()
        self.names.add(body["room_name"])
        return body

    def end(self, name: str, step: int) -> None:
        app = self.host(step)
        ender = self.plan.ender
        if ender in ("owner", "staff"):
            who = self.identity if ender == "owner" else STAFF
            self.users.current = Identity(identity=who, name=who)
            response = app.test_client().delete(f"/livekit/rooms/{name}")
            assert response.status_code == 204, (self.plan, response.get_json())
        elif ender == "host":
            self.extension.end_session(name, app=app)
        else:
            result = app.test_cli_runner().invoke(args=["livekit", "end", name])
            assert result.exit_code == 0, (self.plan, result.output)

    async def run(self) -> None:
        first = self.start(0)
        user = await ChatClient().join(first)  # on_join: this join creates the room
        ended = {first["room_name"]}
        if self.plan.reload:
            again = self.start(1)
            ended.add(again["room_name"])
            await user.leave()
            user = await ChatClient().join(again)
        for step, name in enumerate(sorted(ended)):
            # Ended before its agent joined: the worker waits JOIN_DELAY before joining.
            assert await agents_in(self.server, name) == [], self.plan
            self.end(name, step + 1)
        await user.leave()
        if self.plan.restart == "after-late-agent":
            await asyncio.sleep(JOIN_DELAY + 1.5)
        body = self.start(3)
        live = body["room_name"]
        user = await ChatClient().join(body)
        try:
            await self.check_the_new_session(live)
        finally:
            await user.leave()
            await close_rooms(self.server, sorted(self.names))

    async def check_the_new_session(self, live: str) -> None:
        deadline = time.monotonic() + 30
        while not await agents_in(self.server, live):
            assert time.monotonic() < deadline, ("no agent joined", self.plan)
            await asyncio.sleep(0.25)
        # Any agent of the ended session would have joined by now.
        await asyncio.sleep(JOIN_DELAY + 1.5)
        agents = await agents_in(self.server, live)
        assert len(agents) == 1, (self.plan, [a.identity for a in agents])
        state = get_state(self.hosts[0])
        rooms = {room.name: room for room in await live_rooms(self.server, self.names)}
        session = state.config.binding.read(rooms[live])
        assert session is not None and session.owner == self.identity, self.plan
        # Whatever else is live under the user's names is one the library lists and can end.
        for name, room in rooms.items():
            if name != live:
                with self.hosts[0].app_context():
                    assert squatter(state, room) is not None, (self.plan, name)


@pytest.mark.parametrize(("policy", "mode", "index"), COMBINATIONS)
def test_no_start_end_and_late_agent_interleaving_breaks_the_next_start(
    make_app: Any,
    onboarding: LiveKitOnboarding,
    users: HostUsers,
    livekit_server: LiveKitDevServer,
    redis_server: str,
    late_worker: AgentWorker,
    policy: str,
    mode: str,
    index: int,
) -> None:
    config = {
        "LIVEKIT_ONBOARDING_SESSION_POLICY": policy,
        "LIVEKIT_ONBOARDING_ROOM_CREATION": mode,
        "LIVEKIT_ONBOARDING_AGENT_NAME": LATE_AGENT,
        "LIVEKIT_ONBOARDING_REDIS_URL": redis_server,
        "LIVEKIT_ONBOARDING_NAMESPACE": f"race-{secrets.token_hex(3)}",
    }
    hosts = (make_app(**config), make_app(**config))
    users.staff.add(STAFF)
    plans = interleavings(index)
    for plan in plans:
        asyncio.run(Trial(hosts, onboarding, users, livekit_server, plan).run())


def test_a_worker_with_a_job_still_waiting_to_join_an_ended_session_stops_in_bounded_time(
    make_app: Any,
    users: HostUsers,
    livekit_server: LiveKitDevServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    name = f"stuck-agent-{secrets.token_hex(3)}"
    drain_timeout = 3
    worker = AgentWorker(
        livekit_server.url,
        livekit_server.api_key,
        livekit_server.api_secret,
        agent_name=name,
        log_path=tmp_path_factory.mktemp("stuck") / f"{name}.log",
        http_port=free_port(),
        env={
            "ONBOARDING_AGENT_DRAIN_TIMEOUT": str(drain_timeout),
            "ONBOARDING_AGENT_JOIN_DELAY": "600",
        },
    )
    worker.start()
    app = make_app(LIVEKIT_ONBOARDING_AGENT_NAME=name)
    users.current = Identity(identity=f"stuck-{secrets.token_hex(4)}", name="Ada Lovelace")
    room = app.test_client().post("/livekit/token", json={}).get_json()["room_name"]
    try:
        deadline = time.monotonic() + 30
        while worker.active_jobs() == 0:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.25)
        assert app.test_client().delete(f"/livekit/rooms/{room}").status_code == 204
        process = worker.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        # The drain bound, the job processes' shutdown bound, and a margin for a busy machine;
        # livekit-agents' own default would wait an hour.
        code = process.wait(drain_timeout + 5 + 60)
    finally:
        worker.stop()
    assert code is not None, worker.log_tail()
    assert asyncio.run(live_rooms(livekit_server, {room})) == []


async def squat(server: LiveKitDevServer, name: str, identity: str, *, agent: bool) -> rtc.Room:
    """Join (and so create) room ``name`` as LiveKit's auto-create does: no metadata."""
    grants = api.VideoGrants(room_join=True, room=name, agent=agent)
    token = (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_kind("agent" if agent else "standard")
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(server.url, token)
    return room


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_a_room_squatting_the_users_name_is_cleared_or_reported_never_a_lockout(
    make_app: Any, users: HostUsers, livekit_server: LiveKitDevServer, mode: str
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume",
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
    )
    identity = f"squatted-{secrets.token_hex(4)}"
    users.current = Identity(identity=identity, name="Ada Lovelace")
    state = get_state(app)
    name = state.config.binding.room_name_for(identity)
    client = app.test_client()
    cli = app.test_cli_runner()

    async def scenario() -> None:
        # With on_join the owner's start replaces only a room it knows of: an ended session.
        if mode == "on_join":
            started = client.post("/livekit/token", json={})
            assert started.status_code == 201
            joined = await ChatClient().join(started.get_json())
            await joined.leave()
            assert client.delete(f"/livekit/rooms/{name}").status_code == 204
            await close_rooms(livekit_server, [name])
        agent = await squat(livekit_server, name, "agent-late", agent=True)
        try:
            cleared = client.post("/livekit/token", json={})
            assert cleared.status_code == 201, cleared.get_json()
            room = (await live_rooms(livekit_server, {name}))[0]
            session = state.config.binding.read(room)
            assert session is not None and session.owner == identity, room.metadata
        finally:
            await agent.disconnect()
        await close_rooms(livekit_server, [name])

        stranger = await squat(livekit_server, name, "mallory", agent=False)
        try:
            if mode == "on_join":  # an ended session again, so the start meets the squatter
                state.marks.mark(ENDED_ROOM, name, 60)
            refused = client.post("/livekit/token", json={})
            assert refused.status_code == 409, refused.get_json()
            message = refused.get_json()["error"]["message"]
            assert "1 person is in it" in message and "clears when they leave" in message
            listed = cli.invoke(args=["livekit", "rooms", "--all"])
            assert name in listed.output and "users=1" in listed.output
            assert cli.invoke(args=["livekit", "end", name]).exit_code == 1
            forced = cli.invoke(args=["livekit", "end", "--force", name])
            assert forced.exit_code == 0, forced.output
            again = client.post("/livekit/token", json={})
            assert again.status_code == 201, again.get_json()
        finally:
            await stranger.disconnect()
            await close_rooms(livekit_server, [name])

    asyncio.run(scenario())
