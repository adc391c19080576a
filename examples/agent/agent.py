"""An onboarding agent for rooms made by flask-livekit-onboarding, on ``livekit-agents``.

It needs no model provider and no network beyond LiveKit: it greets the user by name with the
context the host app put in the onboarding envelope, answers typed chat messages with a
scripted onboarding tour (``script.py``), and reacts when the host app changes the context.

Run it next to the Flask app, with the same LiveKit credentials and agent name::

    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    export LIVEKIT_ONBOARDING_AGENT_NAME=onboarding-agent
    python -m livekit.agents start examples/agent/agent.py

The worker registers for explicit dispatch under ``LIVEKIT_ONBOARDING_AGENT_NAME`` (the Flask
app's setting of the same name), so it joins exactly the rooms the token endpoint dispatches
it to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext

from examples.agent.script import OnboardingScript
from flask_livekit_onboarding.envelope import Envelope, client_metadata
from flask_livekit_onboarding.roles import invited_by, role_of

logger = logging.getLogger("onboarding-agent")

#: LiveKit's text-stream topic for chat: livekit-client's ``sendText(text, {topic: 'lk.chat'})``.
CHAT_TOPIC = "lk.chat"
#: RPC method a participant (or a test) calls to see what the agent was told.
STATE_RPC = "onboarding.state"
AGENT_NAME = os.environ.get("LIVEKIT_ONBOARDING_AGENT_NAME") or "onboarding-agent"
DISPLAY_NAME = "Onboarding assistant"
#: A scripted agent costs no CPU worth measuring, so its load is its share of this many jobs.
MAX_JOBS = int(os.environ.get("ONBOARDING_AGENT_MAX_JOBS", "25"))


def _job_load(server: AgentServer) -> float:
    return min(len(server.active_jobs) / MAX_JOBS, 1.0)


server = AgentServer(
    load_fnc=_job_load,
    # The worker's health-check HTTP server. livekit-agents listens on every interface, port
    # 8081, in production; here a free port unless set, so several workers (the demo, tests)
    # fit on one machine.
    host=os.environ.get("ONBOARDING_AGENT_HTTP_HOST", ""),
    port=int(os.environ.get("ONBOARDING_AGENT_HTTP_PORT", "0")),
)


class OnboardingAgent:
    """The agent in one onboarding room: greets, chats, follows context changes."""

    def __init__(self, ctx: JobContext, envelope: Envelope) -> None:
        self.ctx = ctx
        self.room = ctx.room
        self.envelope = envelope
        self.script = OnboardingScript(dict(envelope.context))
        self.greeted: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        room = self.room
        room.register_text_stream_handler(CHAT_TOPIC, self._on_chat)
        room.local_participant.register_rpc_method(STATE_RPC, self._state)
        room.on("participant_active", self._on_active)
        room.on("room_metadata_changed", self._on_metadata)
        for participant in room.remote_participants.values():
            if participant.state == rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE:
                self._on_active(participant)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def say(self, text: str, to: str | None = None) -> None:
        await self.room.local_participant.send_text(
            text, topic=CHAT_TOPIC, destination_identities=[to] if to else None
        )

    def _on_active(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return
        identity = participant.identity
        if identity == self.envelope.owner:
            if not self.script.name:
                self.script.name = participant.name
            text = (
                self.script.welcome_back() if identity in self.greeted else self.script.greeting()
            )
        elif (inviter := invited_by(participant)) is not None:
            role = role_of(participant) or "participant"
            text = self.script.greet_invitee(participant.name or identity, inviter, role)
        else:
            text = self.script.greet_guest(participant.name or identity)
        self.greeted.add(identity)
        logger.info("greeting %s in %s", identity, self.room.name)
        self._spawn(self.say(text, to=identity))

    def _on_chat(self, reader: rtc.TextStreamReader, sender: str) -> None:
        self._spawn(self._answer(reader, sender))

    async def _answer(self, reader: rtc.TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        await self.say(self.script.reply(text))

    def _on_metadata(self, old: str, new: str) -> None:
        envelope = Envelope.from_metadata(new)
        if envelope is None:
            return
        self.envelope = envelope
        message = self.script.context_changed(envelope.context)
        if message:
            self._spawn(self.say(message))

    def _state(self, data: rtc.RpcInvocationData) -> str:
        job = Envelope.from_metadata(self.ctx.job.metadata)
        return json.dumps(
            {
                "agent_name": self.ctx.job.agent_name,
                "job_envelope": _as_dict(job),
                "client_metadata": client_metadata(self.ctx.job.metadata),
                "room_envelope": _as_dict(Envelope.from_metadata(self.room.metadata)),
                "step": self.script.step,
            }
        )


def _as_dict(envelope: Envelope | None) -> dict[str, Any] | None:
    if envelope is None:
        return None
    return {
        "v": envelope.version,
        "session_id": envelope.session_id,
        "owner": envelope.owner,
        "context": dict(envelope.context),
        "client": dict(envelope.client),
        "created_at": envelope.created_at,
    }


@server.rtc_session(agent_name=AGENT_NAME)
async def onboarding_session(ctx: JobContext) -> None:
    """One job per onboarding room the token endpoint dispatched this agent to."""
    # The server built the job metadata: the envelope as it was when the session started.
    envelope = Envelope.from_metadata(ctx.job.metadata)
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    # The room metadata is the live copy (PATCH /context updates it); prefer it once joined.
    envelope = Envelope.from_metadata(ctx.room.metadata) or envelope
    if envelope is None:
        logger.warning("%s is not an onboarding room; leaving", ctx.room.name)
        ctx.shutdown("not an onboarding room")
        return
    OnboardingAgent(ctx, envelope).start()
    # Shown instead of the generated identity (agent-AJ_...) in participant lists.
    await ctx.room.local_participant.set_name(DISPLAY_NAME)
    logger.info("joined %s for %s", ctx.room.name, envelope.owner)
