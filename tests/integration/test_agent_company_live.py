"""The example agent among LiveKit's frontends and other agents, as a real worker.

It publishes ``lk.agent.state`` as livekit-agents' ``AgentSession`` does (LiveKit's starter
frontends end the call when it never leaves ``initializing``), answers only the human who wrote,
never another agent, bounds its own message rate, and its worker stops within a bounded time on
SIGTERM.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from livekit import api

from examples.agent.runner import AgentWorker
from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.conftest import HostUsers
from tests.integration.agent_support import (
    AGENT_STATE,
    ChatClient,
    Message,
    agent_worker,  # noqa: F401 (fixture)
    close_rooms,
    start_worker,
    wait_for_state,
)
from tests.integration.test_agent_live import agent_app, request_token

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("agent_worker")]

#: The example agent's message budget (examples/agent/agent.py): BURST at once, RATE a second.
BURST, RATE = 20, 2.0
SECOND_AGENT = "second-onboarding-agent"


@pytest.fixture
def ada(users: HostUsers) -> str:
    identity = f"ada-{secrets.token_hex(4)}"
    users.current = Identity(identity=identity, name="Ada Lovelace")
    return identity


@pytest.fixture
def rooms(livekit_server: LiveKitDevServer) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    asyncio.run(close_rooms(livekit_server, names))


async def drain(client: ChatClient, seconds: float) -> list[Message]:
    """Every message that reaches ``client`` within ``seconds``."""
    await asyncio.sleep(seconds)
    messages = []
    while not client.inbox.empty():
        messages.append(client.inbox.get_nowait())
    return messages


async def next_from(client: ChatClient, sender: str, timeout: float = 20) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        message = await client.next_message(max(deadline - time.monotonic(), 0.01))
        if message.sender == sender:
            return message


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_the_agent_state_reaches_listening_after_the_greeting(
    make_app: Any, ada: str, rooms: list[str], mode: str
) -> None:
    app = agent_app(make_app, mode)

    async def scenario() -> None:
        body = request_token(app)
        rooms.append(body["room_name"])
        user = await ChatClient().join(body)
        states: list[str] = []
        user.room.on(
            "participant_attributes_changed",
            lambda changed, p: AGENT_STATE in changed and states.append(changed[AGENT_STATE]),
        )
        try:
            greeting = await user.next_message()
            # What the starters wait for before they call the agent ready.
            assert await wait_for_state(user.room, greeting.sender, "listening") == "listening"
            await user.say("next")
            reply = await user.next_message()
            assert reply.text.startswith("Step 2 of 5")
            assert await wait_for_state(user.room, greeting.sender, "listening") == "listening"
            assert set(states) <= {"initializing", "listening", "thinking", "speaking"}
        finally:
            await user.leave()

    asyncio.run(scenario())


def test_the_agent_answers_only_the_human_who_wrote_and_never_an_agent(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    users: HostUsers,
    ada: str,
    rooms: list[str],
) -> None:
    app = agent_app(make_app)

    async def scenario() -> None:
        body = request_token(app)
        room_name = body["room_name"]
        rooms.append(room_name)
        user = await ChatClient().join(body)
        users.current = Identity(identity="staff-grace", name="Grace Hopper")
        users.staff.add("staff-grace")
        grace = await ChatClient().join(request_token(app, {"room_name": room_name}))
        token = (
            api.AccessToken(livekit_server.api_key, livekit_server.api_secret)
            .with_identity("agent-other-bot")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room_name))
            .to_jwt()
        )
        bot = ChatClient()
        await bot.join({"server_url": livekit_server.url, "participant_token": token})
        try:
            greeting = await user.message_containing("Hi Ada Lovelace")
            await grace.message_containing("Hi Grace Hopper")
            await bot.say("next")  # an agent: no answer, and the tour does not move
            await user.say("where")
            reply = await next_from(user, greeting.sender)
            assert reply.text.startswith("Step 1 of 5: Welcome")
            state = await user.agent_state(greeting.sender)
            assert state["step"] == "welcome"
            # The reply went to Ada only; Grace and the bot heard nothing more.
            assert [m for m in await drain(grace, 2) if m.sender == greeting.sender] == []
            assert [m for m in await drain(bot, 0) if m.sender == greeting.sender] == []
        finally:
            for client in (user, grace, bot):
                await client.leave()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def second_worker(
    livekit_server: LiveKitDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    """Another example agent worker, under a name the test app allows clients to request."""
    worker = start_worker(livekit_server, SECOND_AGENT, tmp_path_factory)
    try:
        yield worker
    finally:
        worker.stop()


def test_two_agents_in_one_room_send_a_bounded_number_of_messages(
    make_app: Any, second_worker: AgentWorker, ada: str, rooms: list[str]
) -> None:
    app = agent_app(make_app, LIVEKIT_ONBOARDING_ALLOWED_AGENTS=[SECOND_AGENT])

    async def scenario() -> None:
        body = request_token(app, {"room_config": {"agents": [{"agent_name": SECOND_AGENT}]}})
        rooms.append(body["room_name"])
        user = await ChatClient().join(body)
        try:
            first = await user.message_containing("Hi Ada Lovelace")
            second = await user.message_containing("Hi Ada Lovelace")
            assert first.sender != second.sender  # both agents are in the room
            started = time.monotonic()
            for _ in range(40):  # a flood of typed messages
                await user.say("where")
            messages = await drain(user, 4)
            elapsed = time.monotonic() - started
            per_agent = Counter(m.sender for m in messages)
            assert set(per_agent) <= {first.sender, second.sender}
            for agent in (first.sender, second.sender):
                # Each answers some, within its budget (the greeting took one), not all 40.
                assert 1 <= per_agent[agent] <= BURST + RATE * elapsed, per_agent
            # Had the agents answered each other, messages would keep coming after the flood.
            late = await drain(user, 3)
            assert len(late) <= 2 * (RATE * 3 + 1), late
        finally:
            await user.leave()

    asyncio.run(scenario())


def test_the_worker_stops_within_its_drain_bound_with_a_job_whose_room_is_gone(
    make_app: Any,
    livekit_server: LiveKitDevServer,
    ada: str,
    rooms: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    name = f"draining-agent-{secrets.token_hex(3)}"
    drain_timeout = 3
    worker = AgentWorker(
        livekit_server.url,
        livekit_server.api_key,
        livekit_server.api_secret,
        agent_name=name,
        log_path=tmp_path_factory.mktemp("drain") / f"{name}.log",
        env={"ONBOARDING_AGENT_DRAIN_TIMEOUT": str(drain_timeout)},
    )
    worker.start()
    app = make_app(LIVEKIT_ONBOARDING_AGENT_NAME=name)

    async def scenario() -> None:
        gone = request_token(app)
        stays = request_token(app)
        rooms.extend([gone["room_name"], stays["room_name"]])
        leaving = await ChatClient().join(gone)
        staying = await ChatClient().join(stays)
        try:
            await leaving.message_containing("Hi Ada Lovelace")
            await staying.message_containing("Hi Ada Lovelace")
            await close_rooms(livekit_server, [gone["room_name"]])  # this job's room is gone
            process = worker.process
            assert process is not None
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # The drain bound, plus the job processes' shutdown bound, plus a generous margin
            # for a loaded machine; livekit-agents' own default would wait an hour.
            code = await asyncio.to_thread(process.wait, drain_timeout + 5 + 60)
            stopped_after = time.monotonic() - started
        finally:
            await staying.leave()
            await leaving.leave()
            worker.stop()
        assert code is not None, worker.log_tail()
        assert stopped_after < drain_timeout + 5 + 60
        assert "drain timed out" in worker.log_tail(200)  # the live session did not hold it up

    asyncio.run(scenario())
