"""An onboarding agent for rooms made by flask-livekit-onboarding, on ``livekit-agents``.

It needs no model provider and no network beyond LiveKit: it greets the user by name with the
context the host app put in the onboarding envelope, answers typed chat messages with a
scripted onboarding tour (``script.py``), and reacts when the host app changes the context.

It speaks the agents protocol LiveKit's frontends expect: like ``AgentSession`` it publishes its
state in the ``lk.agent.state`` attribute (``initializing``, ``listening``, ``thinking``,
``speaking``), which the starter frontends wait for before they consider the agent ready. It
is safe next to other agents: it never answers an agent, replies only to whoever wrote, and
sends at most ``BURST`` messages at once and ``RATE`` a second after that.

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
import functools
import json
import logging
import os
import time
from typing import Any

from livekit import api, rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext
from livekit.agents.telemetry import set_tracer_provider, tracer
from opentelemetry import context, propagate

from examples.agent.script import STEP_IDS, OnboardingScript
from flask_livekit_onboarding.agent_reports import Reporter
from flask_livekit_onboarding.envelope import Envelope, client_metadata, trace_context
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
#: The participant attribute livekit-agents' ``AgentSession`` publishes its state in, and
#: LiveKit's frontends read (``useVoiceAssistant``, the starters' "agent is ready" check).
AGENT_STATE = "lk.agent.state"
#: Messages the agent may send at once in one room, and per second after that; the rest are
#: dropped, so no peer (a loop with another bot, a flood of typed messages) makes it spam.
BURST = 20
RATE = 2.0
#: Seconds a SIGTERM waits for running sessions before the worker stops them anyway
#: (livekit-agents' own default is an hour). Job processes then get ``SHUTDOWN_TIMEOUT``.
DRAIN_TIMEOUT = int(os.environ.get("ONBOARDING_AGENT_DRAIN_TIMEOUT", "10"))
SHUTDOWN_TIMEOUT = 5.0
#: Seconds a job waits before it joins (default 0): reproduces an agent that arrives late, as
#: a busy worker does, to test that a session ended meanwhile stays ended.
JOIN_DELAY = float(os.environ.get("ONBOARDING_AGENT_JOIN_DELAY", "0"))


def _job_load(server: AgentServer) -> float:
    return min(len(server.active_jobs) / MAX_JOBS, 1.0)


server = AgentServer(
    load_fnc=_job_load,
    # The worker's health-check HTTP server. livekit-agents listens on every interface, port
    # 8081, in production; here a free port unless set, so several workers (the demo, tests)
    # fit on one machine.
    host=os.environ.get("ONBOARDING_AGENT_HTTP_HOST", ""),
    port=int(os.environ.get("ONBOARDING_AGENT_HTTP_PORT", "0")),
    drain_timeout=DRAIN_TIMEOUT,
    shutdown_process_timeout=SHUTDOWN_TIMEOUT,
)


class MessageBudget:
    """A token bucket: ``burst`` messages at once, then ``rate`` a second."""

    def __init__(self, burst: int = BURST, rate: float = RATE) -> None:
        self.burst, self.rate = burst, rate
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class StatePublisher:
    """Publishes the agent's state attribute, latest value last, one update at a time."""

    def __init__(self, participant: rtc.LocalParticipant) -> None:
        self.participant = participant
        self.wanted = "initializing"
        self.published: str | None = None
        self._task: asyncio.Task[None] | None = None

    def set(self, state: str) -> None:
        self.wanted = state
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._publish())

    async def _publish(self) -> None:
        while self.published != self.wanted:
            state = self.wanted
            try:
                await self.participant.set_attributes({AGENT_STATE: state})
            except Exception:  # the room is gone: nothing left to tell
                logger.debug("could not publish agent state %s", state)
                return
            self.published = state


class OnboardingAgent:
    """The agent in one onboarding room: greets, chats, follows context changes."""

    def __init__(self, ctx: JobContext, envelope: Envelope) -> None:
        self.ctx = ctx
        self.room = ctx.room
        self.envelope = envelope
        self.script = OnboardingScript(dict(envelope.context))
        self.greeted: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.state = StatePublisher(ctx.room.local_participant)
        self.budget = MessageBudget()
        self._sending = 0
        self.reports = _reporter(ctx)
        self.finished = False

    def start(self) -> None:
        room = self.room
        self.state.set("initializing")
        room.register_text_stream_handler(CHAT_TOPIC, self._on_chat)
        room.local_participant.register_rpc_method(STATE_RPC, self._state)
        room.on("participant_active", self._on_active)
        room.on("room_metadata_changed", self._on_metadata)
        for participant in room.remote_participants.values():
            if participant.state == rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE:
                self._on_active(participant)
        self._report_step(None)
        if not self._sending:
            self.state.set("listening")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _is_agent(self, identity: str) -> bool:
        participant = self.room.remote_participants.get(identity)
        # Unknown senders are treated as agents too: a reply must go to a known human.
        return participant is None or participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    def _humans(self) -> list[str]:
        return [i for i in self.room.remote_participants if not self._is_agent(i)]

    async def say(self, text: str, to: list[str]) -> None:
        """Send ``text`` to these participants only, within the room's message budget."""
        if not to:
            return
        if not self.budget.take():
            logger.warning("message budget spent in %s; a message was dropped", self.room.name)
            return
        self._sending += 1
        self.state.set("speaking")
        try:
            await self.room.local_participant.send_text(
                text, topic=CHAT_TOPIC, destination_identities=to
            )
        finally:
            self._sending -= 1
            if not self._sending:
                self.state.set("listening")

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
        self._spawn(self.say(text, to=[identity]))

    def _on_chat(self, reader: rtc.TextStreamReader, sender: str) -> None:
        if self._is_agent(sender):
            return  # two bots answering each other would never stop
        self._spawn(self._answer(reader, sender))

    async def _answer(self, reader: rtc.TextStreamReader, sender: str) -> None:
        self.state.set("thinking")
        text = await reader.read_all()
        before = self.script.step
        await self.say(self.script.reply(text), to=[sender])
        self._report_step(before)
        if not self._sending:
            self.state.set("listening")

    def _report_step(self, before: str | None) -> None:
        """Tell the host app where the tour is; the last step completes the onboarding."""
        step, last = self.script.step, STEP_IDS[-1]
        if self.reports is None or step == before:
            return
        if (
            before in STEP_IDS
            and step in STEP_IDS
            and STEP_IDS.index(step) > STEP_IDS.index(before)
        ):
            self.reports.report_progress(before, "done")
        self.reports.report_progress(step, "done" if step == last else "started")
        if step == last and not self.finished:
            self.finished = True
            self.reports.report_outcome("completed", summary="The user finished the tour.")

    def _on_metadata(self, old: str, new: str) -> None:
        envelope = Envelope.from_metadata(new)
        if envelope is None:
            return
        self.envelope = envelope
        message = self.script.context_changed(envelope.context)
        if message:
            self._spawn(self.say(message, to=self._humans()))

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


@functools.cache
def _export_traces() -> None:
    """Send livekit-agents' spans to ``OTEL_EXPORTER_OTLP_ENDPOINT``, when it is set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    set_tracer_provider(provider)


def _reporter(ctx: JobContext) -> Reporter | None:
    """The reporter to the host app (``LIVEKIT_ONBOARDING_HOST_URL``), or None without one."""
    try:
        reporter = Reporter.from_job(ctx)
    except ValueError as error:
        logger.info("not reporting to the host app: %s", error)
        return None
    ctx.add_shutdown_callback(lambda: reporter.aclose(timeout=5))
    return reporter


@server.rtc_session(agent_name=AGENT_NAME)
async def onboarding_session(ctx: JobContext) -> None:
    """One job per onboarding room the token endpoint dispatched this agent to."""
    _export_traces()
    # Continue the token request's trace: its traceparent travels in the job metadata.
    context.attach(propagate.extract(trace_context(ctx.job.metadata)))
    with tracer.start_as_current_span("onboarding_agent.join"):
        await _join(ctx)


async def _session_is_live(ctx: JobContext, envelope: Envelope) -> bool:
    """Whether the job's session still holds its room: the room is live and carries it."""
    name = ctx.job.room.name
    try:
        response = await ctx.api.room.list_rooms(api.ListRoomsRequest(names=[name]))
    except Exception:  # noqa: BLE001 - unsure: join, and check the room's metadata after
        return True
    live = (Envelope.from_metadata(room.metadata) for room in response.rooms if room.name == name)
    return any(found is not None and found.session_id == envelope.session_id for found in live)


async def _join(ctx: JobContext) -> None:
    # The server built the job metadata: the envelope as it was when the session started.
    envelope = Envelope.from_metadata(ctx.job.metadata)
    if envelope is not None and envelope.stale_for(ctx.job.room):
        # A token kept past its session re-created the room: it is no session to serve.
        logger.warning("%s was re-created after its session; not joining", ctx.job.room.name)
        ctx.shutdown("stale onboarding room")
        return
    if JOIN_DELAY > 0:
        await asyncio.sleep(JOIN_DELAY)
    if envelope is not None and not await _session_is_live(ctx, envelope):
        # Joining would re-create the room of an ended session, or sit beside the agent of
        # the session that now holds the name.
        logger.warning("%s: its session ended before the agent joined", ctx.job.room.name)
        ctx.shutdown("session ended")
        return
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    # The room metadata is the live copy (PATCH /context updates it); prefer it once joined.
    live = Envelope.from_metadata(ctx.room.metadata)
    if envelope is not None and (live is None or live.session_id != envelope.session_id):
        logger.warning("%s holds another session than this job's; leaving", ctx.room.name)
        ctx.shutdown("session ended")
        return
    envelope = live or envelope
    if envelope is None:
        logger.warning("%s is not an onboarding room; leaving", ctx.room.name)
        ctx.shutdown("not an onboarding room")
        return
    OnboardingAgent(ctx, envelope).start()
    # Shown instead of the generated identity (agent-AJ_...) in participant lists.
    await ctx.room.local_participant.set_name(DISPLAY_NAME)
    logger.info("joined %s for %s", ctx.room.name, envelope.owner)
