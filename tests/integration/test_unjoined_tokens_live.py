"""A token that is never used to join costs no agent for longer than the documented bound.

Page-load prefetches (LiveKit's starter frontends fetch a token when the page opens) and bots
ask for tokens they never use. In ``on_join`` mode such a token creates nothing. In ``eager``
mode it creates a room and dispatches the agent at once; LiveKit closes a room nobody joined
after ``LIVEKIT_ONBOARDING_EMPTY_TIMEOUT`` seconds (an agent does not count as someone), and
the agent's job ends with the room. A join after that re-creates the room from the token, and
the agent is dispatched again. A real worker counts its jobs; LiveKit counts the rooms.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api

from examples.agent.runner import AgentWorker, AgentWorkerError
from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.config import EMPTY_TIMEOUT
from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port
from tests.conftest import HostUsers
from tests.integration.agent_support import ChatClient, close_rooms
from tests.integration.conftest import _unavailable
from tests.integration.test_agent_live import request_token

pytestmark = pytest.mark.integration

N = 5
#: LiveKit looks for idle rooms every second; the job then disconnects and its process
#: returns to the pool. On a loaded machine that takes a few seconds more.
SLACK = 25
OUTPUT = Path(__file__).resolve().parents[2] / "tests" / "output"
measured: dict[str, Any] = {}


@pytest.fixture(scope="module")
def counted_worker(
    livekit_server: LiveKitDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    """An example agent worker of its own, whose job count only this module's rooms change."""
    name = f"unjoined-{secrets.token_hex(3)}"
    worker = AgentWorker(
        livekit_server.url,
        livekit_server.api_key,
        livekit_server.api_secret,
        agent_name=name,
        http_port=free_port(),
        log_path=tmp_path_factory.mktemp("agent") / f"{name}.log",
    )
    try:
        worker.start()
    except AgentWorkerError as exc:
        _unavailable(f"the example agent worker did not start: {exc}")
    try:
        yield worker
    finally:
        worker.stop()
        if measured:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "unjoined-token-cost.json").write_text(json.dumps(measured, indent=2) + "\n")


async def no_jobs_left(worker: AgentWorker, timeout: float = 30) -> None:
    """Wait for the jobs of an earlier test to end, so this one counts only its own."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(worker.active_jobs):
        assert time.monotonic() < deadline, "the jobs of an earlier test did not end"
        await asyncio.sleep(0.2)


async def live_rooms(server: LiveKitDevServer, names: list[str]) -> list[str]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        response = await lk.room.list_rooms(api.ListRoomsRequest(names=names))
    return [room.name for room in response.rooms]


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_tokens_never_used_leave_no_agent_job_and_no_room_after_the_bound(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    counted_worker: AgentWorker,
    users: HostUsers,
    mode: str,
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
        LIVEKIT_ONBOARDING_AGENT_NAME=counted_worker.agent_name,
        # A starter-style page joins with the token it fetched at load, minutes later.
        LIVEKIT_ONBOARDING_TOKEN_TTL=900,
    )
    assert app.config["LIVEKIT_ONBOARDING_EMPTY_TIMEOUT"] == EMPTY_TIMEOUT  # the default

    async def scenario() -> None:
        await no_jobs_left(counted_worker)
        started = time.monotonic()
        bodies = []
        for index in range(N):  # guests without a cookie: a new identity each time
            users.current = Identity(identity=f"guest-{secrets.token_hex(4)}-{index}")
            bodies.append(request_token(app))
        names = [body["room_name"] for body in bodies]
        peak_jobs = peak_rooms = 0
        cleared_after = None
        while time.monotonic() - started < EMPTY_TIMEOUT + SLACK:
            jobs = await asyncio.to_thread(counted_worker.active_jobs)
            rooms = await live_rooms(livekit_server, names)
            peak_jobs, peak_rooms = max(peak_jobs, jobs), max(peak_rooms, len(rooms))
            if jobs == 0 and not rooms and (mode == "on_join" or peak_jobs):
                cleared_after = time.monotonic() - started
                if mode == "eager" or cleared_after > 5:
                    break
            await asyncio.sleep(0.5)
        measured[mode] = {
            "tokens": N,
            "peak_agent_jobs": peak_jobs,
            "peak_live_rooms": peak_rooms,
            "seconds_until_none_left": None if cleared_after is None else round(cleared_after, 1),
            "bound_seconds": EMPTY_TIMEOUT,
        }
        assert cleared_after is not None, measured[mode]
        assert await asyncio.to_thread(counted_worker.active_jobs) == 0
        assert await live_rooms(livekit_server, names) == []
        if mode == "on_join":
            assert (peak_jobs, peak_rooms) == (0, 0)  # nothing was created at all

        if mode == "eager":
            # An eager token carries no room configuration: nothing is re-created by a late join.
            claims = api.TokenVerifier(livekit_server.api_key, livekit_server.api_secret)
            assert claims.verify(bodies[0]["participant_token"]).room_config is None
            return
        # A late join with one of those tokens gets its onboarding room and its agent.
        joined = time.monotonic()
        user = await ChatClient().join(bodies[0])
        try:
            greeting = await user.next_message(timeout=30)
            measured[mode]["late_join_seconds_to_greeting"] = round(greeting.at - joined, 3)
            assert greeting.text.startswith("Hi ")
            assert "plan: pro" in greeting.text
        finally:
            await user.leave()
            await close_rooms(livekit_server, names)

    asyncio.run(scenario())


def test_greeting_latency_when_the_agent_waits_in_the_room(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    counted_worker: AgentWorker,
    users: HostUsers,
) -> None:
    """What eager dispatch buys: the agent is already in the room when the user joins."""
    app = make_app(LIVEKIT_ONBOARDING_AGENT_NAME=counted_worker.agent_name)
    users.current = Identity(identity=f"guest-{secrets.token_hex(4)}")

    async def scenario() -> None:
        await no_jobs_left(counted_worker)
        body = request_token(app)
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(counted_worker.active_jobs) == 0:
            assert time.monotonic() < deadline, "the agent was not dispatched"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # the job has joined the room
        joined = time.monotonic()
        user = await ChatClient().join(body)
        try:
            greeting = await user.next_message(timeout=30)
            measured["eager_agent_waiting_seconds_to_greeting"] = round(greeting.at - joined, 3)
            assert greeting.text.startswith("Hi ")
        finally:
            await user.leave()
            await close_rooms(livekit_server, [body["room_name"]])

    asyncio.run(scenario())
