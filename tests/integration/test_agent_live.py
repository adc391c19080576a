"""The example onboarding agent as a real ``livekit-agents`` worker against a real livekit-server.

The token endpoint dispatches the agent by name; the agent must join, greet the user with the
host app's context, find the server's envelope in its job metadata (and nothing a client can
forge there), follow a context PATCH, and be the only agent in the room. A user is the
``livekit`` Python SDK talking on LiveKit's ``lk.chat`` text-stream topic.
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
from flask import Flask

from examples.agent.runner import AgentWorker
from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.conftest import HostUsers
from tests.integration.agent_support import (
    AGENT_NAME,
    ChatClient,
    agent_worker,  # noqa: F401 (fixture)
    agents_in_room,
    close_rooms,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("agent_worker")]

MODES = ["eager", "on_join"]
OUTPUT = Path(__file__).resolve().parents[2] / "tests" / "output"
#: Seconds from the token request to the agent's greeting, per creation mode.
greeting_latency: dict[str, list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def report_latency() -> Iterator[None]:
    yield
    if greeting_latency:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "agent-greeting-latency.json").write_text(
            json.dumps(greeting_latency, indent=2) + "\n"
        )


@pytest.fixture
def ada(users: HostUsers) -> str:
    """The signed-in user: Ada, with an identity of her own in every test.

    The session's livekit-server outlives each test, and a user's live onboarding room is
    resumed, so a shared identity would land in an earlier test's room.
    """
    identity = f"ada-{secrets.token_hex(4)}"
    users.current = Identity(identity=identity, name="Ada Lovelace")
    return identity


@pytest.fixture
def rooms(livekit_server: LiveKitDevServer) -> Iterator[list[str]]:
    """Room names to close after the test, so their agent jobs end too."""
    names: list[str] = []
    yield names
    asyncio.run(close_rooms(livekit_server, names))


def context_of(identity: str) -> dict[str, str]:
    """What the test app's context provider (tests/conftest.py) stores for ``identity``."""
    return {"user": identity, "plan": "pro", "locale": "en", "step": "welcome"}


def agent_app(make_app: Any, mode: str = "eager", **config: Any) -> Flask:
    app: Flask = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT_NAME,
        **config,
    )
    return app


def request_token(app: Flask, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json=body or {})
    assert response.status_code == 201, response.get_json()
    payload: dict[str, Any] = response.get_json()
    return payload


@pytest.mark.parametrize("mode", MODES)
def test_agent_joins_and_greets_the_user_with_the_hosts_context(
    make_app: Any, livekit_server: LiveKitDevServer, ada: str, rooms: list[str], mode: str
) -> None:
    app = agent_app(make_app, mode)

    async def scenario() -> None:
        started = time.monotonic()
        body = request_token(app)
        rooms.append(body["room_name"])
        user = await ChatClient().join(body)
        try:
            greeting = await user.next_message()
            greeting_latency.setdefault(mode, []).append(round(greeting.at - started, 3))
            assert greeting.sender.startswith("agent-")
            # The provider's context (tests/conftest.py): Ada, plan pro, locale en, step welcome.
            assert greeting.text.startswith("Hi Ada Lovelace, welcome")
            assert "plan: pro" in greeting.text
            assert "locale: en" in greeting.text
            assert "Step 1 of 5: Welcome" in greeting.text
            # It answers typed messages on the chat topic.
            await user.say("next")
            reply = await user.next_message()
            assert reply.sender == greeting.sender
            assert reply.text.startswith("Step 2 of 5: Connect a data source")
            assert await agents_in_room(livekit_server, body["room_name"]) == [greeting.sender]
        finally:
            await user.leave()

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_job_metadata_is_the_servers_envelope(
    make_app: Any, livekit_server: LiveKitDevServer, ada: str, rooms: list[str], mode: str
) -> None:
    app = agent_app(make_app, mode)

    async def scenario() -> None:
        body = request_token(app)
        rooms.append(body["room_name"])
        user = await ChatClient().join(body)
        try:
            greeting = await user.next_message()
            state = await user.agent_state(greeting.sender)
        finally:
            await user.leave()
        assert state["agent_name"] == AGENT_NAME
        job, room = state["job_envelope"], state["room_envelope"]
        assert job is not None, "the dispatch carried no onboarding envelope as job metadata"
        assert job["v"] == 2
        assert job["owner"] == ada
        assert job["context"] == context_of(ada)
        assert job["session_id"]
        # The same session as the room metadata, which the server wrote too.
        assert job == room
        assert state["client_metadata"] is None

    asyncio.run(scenario())


FORGED = json.dumps(
    {
        "onboarding": {
            "v": 2,
            "session_id": "forged",
            "owner": "mallory",
            "context": {"plan": "enterprise", "discount": "100%"},
            "client": {},
            "created_at": 0,
            "sig": "forged",
        }
    }
)


@pytest.mark.parametrize("mode", MODES)
def test_a_client_cannot_forge_the_agents_envelope(
    make_app: Any, livekit_server: LiveKitDevServer, ada: str, rooms: list[str], mode: str
) -> None:
    app = agent_app(make_app, mode)
    response = app.test_client().post(
        "/livekit/token",
        json={"room_config": {"agents": [{"agent_name": AGENT_NAME, "metadata": FORGED}]}},
    )
    if response.status_code == 403:  # the deployment refuses client agent metadata outright
        assert "room_config" in json.dumps(response.get_json())
        return
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    rooms.append(body["room_name"])

    async def scenario() -> None:
        user = await ChatClient().join(body)
        try:
            greeting = await user.next_message()
            assert "Hi Ada Lovelace" in greeting.text
            assert "enterprise" not in greeting.text
            state = await user.agent_state(greeting.sender)
            await asyncio.sleep(1)  # a second dispatch would have joined by now
            assert await agents_in_room(livekit_server, body["room_name"]) == [greeting.sender]
        finally:
            await user.leave()
        job = state["job_envelope"]
        assert job["owner"] == ada
        assert job["context"]["plan"] == "pro"
        assert "discount" not in job["context"]
        # What the client asked for travels beside the envelope, marked as the client's.
        assert state["client_metadata"] == FORGED

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_context_patch_reaches_the_agent(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    users: HostUsers,
    ada: str,
    rooms: list[str],
    mode: str,
) -> None:
    app = agent_app(make_app, mode)

    async def scenario() -> None:
        body = request_token(app)
        rooms.append(body["room_name"])
        user = await ChatClient().join(body)
        try:
            greeting = await user.next_message()
            # The host app moves the session on (here its staff, through the session route).
            users.current = Identity(identity="staff-grace", name="Grace Hopper")
            users.staff.add("staff-grace")
            response = await asyncio.to_thread(
                app.test_client().patch,
                f"/livekit/rooms/{body['room_name']}/context",
                json={"context": {"step": "invite-team", "plan": "business"}},
            )
            assert response.status_code == 200, response.get_json()
            news = await user.next_message()
            assert news.sender == greeting.sender
            assert "Invite your team" in news.text
            state = await user.agent_state(greeting.sender)
            assert state["step"] == "invite-team"
            assert state["room_envelope"]["context"]["plan"] == "business"
            # The job metadata stays what the session started with.
            assert state["job_envelope"]["context"]["plan"] == "pro"
        finally:
            await user.leave()

    asyncio.run(scenario())


def test_exactly_one_agent_per_room_across_rejoins(
    make_app: Any, livekit_server: LiveKitDevServer, ada: str, rooms: list[str]
) -> None:
    app = agent_app(make_app)

    async def scenario() -> None:
        first = request_token(app)
        rooms.append(first["room_name"])
        user = await ChatClient().join(first)
        try:
            greeting = await user.next_message()
            # Two more tabs rejoin by name: the same session, the same agent, no second dispatch.
            tabs = []
            for _ in range(2):
                again = request_token(app, {"room_name": first["room_name"]})
                assert again["room_name"] == first["room_name"]
                tab = await ChatClient().join(again)
                tabs.append(tab)
                welcome = await tab.next_message()
                assert welcome.sender == greeting.sender
                assert welcome.text.startswith("Welcome back, Ada Lovelace")
            await asyncio.sleep(1)
            assert await agents_in_room(livekit_server, first["room_name"]) == [greeting.sender]
            for tab in tabs:
                await tab.leave()
        finally:
            await user.leave()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def uninvited_worker(
    livekit_server: LiveKitDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    """A second real worker, registered under a name the deployment does not allow."""
    worker = start_worker(livekit_server, "uninvited-agent", tmp_path_factory)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.parametrize("mode", MODES)
def test_a_disallowed_agent_is_refused_and_none_joins(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    uninvited_worker: AgentWorker,
    ada: str,
    mode: str,
) -> None:
    app = agent_app(make_app, mode)
    for agent in (
        {"agent_name": "uninvited-agent"},
        {"agent_name": "uninvited-agent", "metadata": "{}"},
    ):
        response = app.test_client().post(
            "/livekit/token", json={"room_config": {"agents": [agent]}}
        )
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["error"]["field"].startswith("room_config.agents")
    time.sleep(1)  # a dispatch would reach the worker within a few hundred milliseconds
    assert "received job request" not in uninvited_worker.log_tail(200)
