"""The example agent as a real worker for integration tests, and a chat client to talk to it.

One worker per test session: test modules take it through the ``agent_worker`` fixture (import
it), which starts it on first use and stops it when the last module using it is done. The
worker runs in the agent's own virtualenv (``scripts/setup-agent-env.sh``, built on demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit import api, rtc

from examples.agent.runner import AgentWorker, AgentWorkerError, ensure_agent_env
from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.integration.conftest import _unavailable

#: Not the demo's name, and not one other tests configure: only these tests dispatch it.
AGENT_NAME = "example-onboarding-agent"
CHAT_TOPIC = "lk.chat"
#: Where an agent publishes its state, as livekit-agents' AgentSession does.
AGENT_STATE = "lk.agent.state"
STATE_RPC = "onboarding.state"

_shared: dict[str, list[Any]] = {}


@pytest.fixture(scope="session")
def agent_worker(
    livekit_server: LiveKitDevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    """The example agent registered with the session's livekit-server as ``AGENT_NAME``."""
    entry = _shared.get(livekit_server.url)
    if entry is None:
        worker = start_worker(livekit_server, AGENT_NAME, tmp_path_factory)
        entry = _shared[livekit_server.url] = [worker, 0]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _shared[livekit_server.url]
            entry[0].stop()


def start_worker(
    server: LiveKitDevServer,
    agent_name: str,
    tmp_path_factory: pytest.TempPathFactory,
    host_url: str | None = None,
) -> AgentWorker:
    try:
        python = ensure_agent_env()
    except AgentWorkerError as exc:
        _unavailable(f"no environment for the example agent: {exc}")
    worker = AgentWorker(
        server.url,
        server.api_key,
        server.api_secret,
        agent_name=agent_name,
        python=python,
        log_path=tmp_path_factory.mktemp("agent") / f"{agent_name}.log",
        host_url=host_url,
    )
    try:
        worker.start()
    except AgentWorkerError as exc:
        _unavailable(f"the example agent worker did not start: {exc}")
    return worker


@dataclass
class Message:
    sender: str
    text: str
    at: float


@dataclass
class ChatClient:
    """A user in the onboarding room (the ``livekit`` SDK) reading the ``lk.chat`` topic."""

    room: rtc.Room = field(default_factory=rtc.Room)
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)

    async def join(self, body: dict[str, Any]) -> ChatClient:
        self.room.register_text_stream_handler(CHAT_TOPIC, self._on_text)
        await self.room.connect(body["server_url"], body["participant_token"])
        return self

    def _on_text(self, reader: rtc.TextStreamReader, sender: str) -> None:
        async def read() -> None:
            self.inbox.put_nowait(Message(sender, await reader.read_all(), time.monotonic()))

        asyncio.ensure_future(read())

    async def next_message(self, timeout: float = 20) -> Message:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def message_containing(self, text: str, timeout: float = 20) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next_message(max(deadline - time.monotonic(), 0.01))
            if text in message.text:
                return message

    async def say(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic=CHAT_TOPIC)

    async def agent_state(self, agent_identity: str) -> dict[str, Any]:
        """What the agent was told: its job envelope, the room envelope, client metadata."""
        answer = await self.room.local_participant.perform_rpc(
            destination_identity=agent_identity, method=STATE_RPC, payload=""
        )
        state: dict[str, Any] = json.loads(answer)
        return state

    async def leave(self) -> None:
        await self.room.disconnect()


async def agents_in_room(server: LiveKitDevServer, room_name: str) -> list[str]:
    """Identities of the agent participants LiveKit has in the room."""
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        response = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
    return [p.identity for p in response.participants if p.kind == api.ParticipantInfo.Kind.AGENT]


async def close_rooms(server: LiveKitDevServer, room_names: list[str]) -> None:
    """Delete rooms (those already gone are fine): everyone in them, agents too, leaves."""
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        for name in room_names:
            with contextlib.suppress(api.TwirpError):
                await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def wait_for_state(room: rtc.Room, agent: str, wanted: str, timeout: float = 20) -> str:
    """Wait for ``agent`` to publish state ``wanted``; return the state it ended up in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        participant = room.remote_participants.get(agent)
        if participant is not None and participant.attributes.get(AGENT_STATE) == wanted:
            return wanted
        await asyncio.sleep(0.1)
    participant = room.remote_participants.get(agent)
    return participant.attributes.get(AGENT_STATE, "<none>") if participant else "<gone>"
