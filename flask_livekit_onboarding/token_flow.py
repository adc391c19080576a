"""The token flow: start, resume or join an onboarding session, then mint one token for it.

A token request reads top to bottom in :func:`issue_token`. What differs between
deployments is chosen once, at ``init_app`` (:func:`token_flow_for`): when LiveKit's room
comes to be (:class:`EagerCreation` at the token, :class:`OnJoinCreation` at the first join)
and what a new session is named (:class:`ResumeSessions`: one live session per user;
:class:`NewSessions`: a new room every time).
"""

from __future__ import annotations

import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from livekit import api

from . import signals
from .access import require_room, resign_if_rotated
from .caller import Caller
from .claims import claim_room
from .config import OnboardingConfig
from .envelope import Envelope, OnboardingRoom, job_metadata
from .errors import ConfigurationError, Forbidden, RoomOccupied, ValidationFailed
from .hooks import Identity
from .livekit_limits import (
    MetadataRefused,
    check_participant_token,
    check_stored_json,
    room_metadata,
)
from .marks import ENDED_ROOM
from .roles import Role
from .signals import send_contained
from .state import OnboardingState
from .token_request import AgentRequest
from .tokens import JOIN_GRACE, mint_participant_token

logger = logging.getLogger(__name__)

#: What a token request did to the caller's session: joined a named live room, started a
#: new one, resumed the caller's live one, or left it to LiveKit at the join (``on_join``).
SessionOutcome = Literal["joined", "new", "resumed", "at_join"]
#: ``resumed`` as the token response reports each outcome.
RESUMED: dict[SessionOutcome, bool | None] = {
    "joined": True,
    "new": False,
    "resumed": True,
    "at_join": None,
}


@dataclass(frozen=True)
class IssuedToken:
    """A participant token and what a client needs with it."""

    server_url: str
    participant_token: str = field(repr=False)
    room_name: str
    participant_name: str
    expires_in: int
    #: True: the caller's live session was resumed (or a named room joined); False: a new
    #: room was started; None: ``on_join`` mode, where LiveKit decides at the join.
    resumed: bool | None = None

    def response_body(self) -> dict[str, Any]:
        """LiveKit's standardized token response, plus ``resumed``.

        The two fields every client needs come in both casings: LiveKit's Swift and Unity
        SDKs read only snake_case, its web starters only camelCase.
        """
        return {
            "server_url": self.server_url,
            "participant_token": self.participant_token,
            "serverUrl": self.server_url,
            "participantToken": self.participant_token,
            "room_name": self.room_name,
            "participant_name": self.participant_name,
            "resumed": self.resumed,
        }


@dataclass(frozen=True)
class NewSession:
    """A session about to start: its LiveKit room settings and signed envelope."""

    owner: Identity
    settings: api.RoomConfiguration
    envelope: Envelope

    @property
    def room_name(self) -> str:
        return self.settings.name


class SessionPolicy(ABC):
    """What a new session's room is named, and so whether a start resumes a live session."""

    #: True when a user's next start lands in their live session.
    resumes: bool

    @abstractmethod
    def room_name(self, state: OnboardingState, owner: Identity) -> str:
        """The room name of ``owner``'s new session."""


class ResumeSessions(SessionPolicy):
    """One live session per user: the room name is derived from the identity, so a reload,
    a second tab or a lost room name lands in the live room."""

    resumes = True

    def room_name(self, state: OnboardingState, owner: Identity) -> str:
        return _rotated_room(state, owner) or state.config.binding.room_name_for(owner.identity)


class NewSessions(SessionPolicy):
    """A new room on every start."""

    resumes = False

    def room_name(self, state: OnboardingState, owner: Identity) -> str:
        return state.config.room_prefix + secrets.token_urlsafe(16)


class RoomCreation(ABC):
    """When LiveKit's room of a new session comes to be."""

    #: Whether the session's token carries the room configuration (LiveKit creates the room
    #: from it at the first join); its envelope then carries a join deadline.
    carries_room_config: bool

    @abstractmethod
    def start(self, state: OnboardingState, session: NewSession) -> SessionOutcome:
        """Open ``session`` (or find the owner's live one); say which happened."""


class EagerCreation(RoomCreation):
    """The room is created at the token request, and its agent dispatched at once.

    LiveKit's CreateRoom returns a live room unchanged, without a second dispatch, so a start
    under the ``resume`` policy lands in the owner's live session.
    """

    carries_room_config = False

    def start(self, state: OnboardingState, session: NewSession) -> SessionOutcome:
        name = session.room_name
        claimed = claim_room(state, session.settings, session.owner.identity)
        live = state.config.binding.read(claimed)
        if live is None or live.envelope is None:  # pragma: no cover - claim returns ours
            raise RoomOccupied(f"The room {name!r} is not an onboarding room of this deployment.")
        if live.session_id == session.envelope.session_id:
            _announce_new_room(state, session)
            return "new"
        _announce_resumed(state, session.owner, live)
        return "resumed"


class OnJoinCreation(RoomCreation):
    """The token carries the room configuration; LiveKit creates the room at the first join
    (and applies it only when the room is not live, so a resumed session stays as it is)."""

    carries_room_config = True

    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy

    def start(self, state: OnboardingState, session: NewSession) -> SessionOutcome:
        if not self.policy.resumes:
            _announce_new_room(state, session)
            return "at_join"
        if state.marks.marked(ENDED_ROOM, session.room_name):
            # The owner's ended session left a marker room in the name: the new session is
            # created now (as eager does), so no token kept from before the end takes it.
            claim_room(state, session.settings, session.owner.identity)
            state.marks.clear(ENDED_ROOM, session.room_name)
            _announce_new_room(state, session)
            return "new"
        return "at_join"


@dataclass(frozen=True)
class TokenFlow:
    """The token request's rules of one app."""

    creation: RoomCreation
    policy: SessionPolicy


def token_flow_for(config: OnboardingConfig) -> TokenFlow:
    """The rules ``config`` chooses (``ROOM_CREATION`` and ``SESSION_POLICY``)."""
    policy: SessionPolicy = ResumeSessions() if config.session_policy == "resume" else NewSessions()
    creation: RoomCreation = (
        OnJoinCreation(policy) if config.room_creation == "on_join" else EagerCreation()
    )
    return TokenFlow(creation, policy)


def rules_of(state: OnboardingState) -> TokenFlow:
    """The rules ``init_app`` chose for ``state``'s app."""
    flow: TokenFlow = state.token_flow
    return flow


def issue_token(
    state: OnboardingState,
    caller: Caller,
    *,
    participant: Identity | None = None,
    room_name: str | None = None,
    agents: Iterable[AgentRequest] = (),
    context: Mapping[str, Any] | None = None,
    ttl: int | None = None,
) -> IssuedToken:
    """Start or resume ``caller``'s onboarding session (or join ``room_name``); mint a token.

    Access, the session's owner and its context come from ``caller``; ``participant``
    (default: the caller) is who the token names. ``context`` replaces the host's
    ``context_provider`` for a new session (the operator's ``flask livekit token``).
    """
    owner = caller.person
    participant = participant or owner
    agents = tuple(agents)
    expires_in = ttl or state.config.token_ttl
    creation = rules_of(state).creation
    config = state.config
    outcome: SessionOutcome
    with state.telemetry.token_span(
        config.room_creation, config.session_policy, owner.identity
    ) as traced:
        if room_name is not None:
            # Joining a live room: the token carries no room configuration, so it can never
            # bring that room back once its session has ended.
            _no_agents_for_a_live_room(agents)
            room = require_room(state, room_name, caller, "join")
            role: Role = "owner" if room.owner == owner.identity else "staff"
            token = _participant_token(state, participant, room.name, role, expires_in)
            name, outcome, dispatched = room.name, "joined", []
        else:
            join_by = int(time.time()) + expires_in + JOIN_GRACE
            session = _new_session(
                state, owner, agents, context, join_by if creation.carries_room_config else 0
            )
            # Minted before anything is created: a token over the size bound creates no room.
            carried = session.settings if creation.carries_room_config else None
            role = "owner"
            token = _participant_token(
                state, participant, session.room_name, role, expires_in, room_config=carried
            )
            name, outcome = session.room_name, creation.start(state, session)
            # A resumed session keeps the agents it had; nothing new is dispatched.
            dispatched = [] if outcome == "resumed" else list(session.settings.agents)
        traced.done(name, outcome, sorted({agent.agent_name for agent in dispatched}))
    return announce_token(state, participant, name, role, token, expires_in, RESUMED[outcome])


def invitee_token(
    state: OnboardingState,
    room: OnboardingRoom,
    participant: Identity,
    role: Role,
    *,
    invited_by: str,
) -> IssuedToken:
    """A token for an invitee into ``room``, whose invite has already been redeemed.

    The token carries no room configuration: should the session end before the join, it
    joins no onboarding room and never brings the session back.
    """
    expires_in = state.config.token_ttl
    token = _participant_token(
        state, participant, room.name, role, expires_in, invited_by=invited_by
    )
    return announce_token(state, participant, room.name, role, token, expires_in, True)


def announce_token(
    state: OnboardingState,
    participant: Identity,
    room_name: str,
    role: Role,
    token: str,
    expires_in: int,
    resumed: bool | None,
) -> IssuedToken:
    """Announce a token minted for ``participant`` (``token_issued``) and hand it out."""
    name = participant.name or participant.identity
    send_contained(
        signals.token_issued,
        state.app,
        room_name=room_name,
        identity=participant,
        participant_name=name,
        expires_in=expires_in,
        role=role,
    )
    return IssuedToken(state.config.public_url, token, room_name, name, expires_in, resumed)


def _participant_token(
    state: OnboardingState,
    participant: Identity,
    room_name: str,
    role: Role,
    ttl: int,
    *,
    room_config: api.RoomConfiguration | None = None,
    invited_by: str | None = None,
) -> str:
    """``participant``'s token for ``room_name`` as ``role``, within the token size bound."""
    token = mint_participant_token(
        state.config,
        room_name=room_name,
        identity=participant.identity,
        name=participant.name or participant.identity,
        metadata=participant.metadata,
        attributes=participant.attributes,
        room_config=room_config,
        ttl=ttl,
        role=role,
        invited_by=invited_by,
    )
    return check_participant_token(token, state.config, participant, room_config)


def _no_agents_for_a_live_room(agents: tuple[AgentRequest, ...]) -> None:
    if agents:
        raise ValidationFailed(
            "room_config.agents applies to new rooms only; omit room_name to start one.",
            field="room_config.agents",
        )


def _new_session(
    state: OnboardingState,
    owner: Identity,
    agents: tuple[AgentRequest, ...],
    context: Mapping[str, Any] | None,
    join_by: int,
) -> NewSession:
    """The room settings and envelope of ``owner``'s new session; nothing is called yet."""
    config = state.config
    from_provider = context is None
    if context is None:
        provider = state.hooks.context_provider
        context = dict(provider(owner)) if provider is not None else {}
        check_stored_json(context, "context", config.max_context_depth, hook="context_provider")
    name = rules_of(state).policy.room_name(state, owner)
    fresh = replace(Envelope.new(owner.identity, context, int(time.time())), join_by=join_by)
    envelope = config.binding.sign(name, fresh)
    dispatched = _dispatched_agents(state, agents)
    try:
        metadata = room_metadata(envelope, "context")
    except MetadataRefused as refused:
        if from_provider:
            raise ConfigurationError(f"context_provider returned {refused.reason}") from None
        raise
    settings = _room_settings(state, name, metadata, envelope, dispatched)
    return NewSession(owner, settings, envelope)


def _rotated_room(state: OnboardingState, owner: Identity) -> str | None:
    """During a signing-key rotation's overlap: the owner's live room named with a previous
    key, so the rotation opens no second room (one LiveKit call, only during the overlap)."""
    binding = state.config.binding
    names = [binding.room_name_for(owner.identity, key) for key in binding.accepted()]
    if not names:
        return None
    response = state.livekit.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest(names=names)))
    return next((room.name for room in response.rooms if binding.read(room) is not None), None)


def _announce_new_room(state: OnboardingState, session: NewSession) -> None:
    name, envelope = session.room_name, session.envelope
    logger.info(
        "onboarding room %r created for %r",
        name,
        session.owner.identity,
        extra={"room_name": name, "session_id": envelope.session_id},
    )
    send_contained(
        signals.room_created,
        state.app,
        room_name=name,
        identity=session.owner,
        context=dict(envelope.context),
        mode=state.config.room_creation,
        session_id=envelope.session_id,
    )


def _announce_resumed(state: OnboardingState, owner: Identity, live: OnboardingRoom) -> None:
    resign_if_rotated(state, live)
    logger.info(
        "onboarding room %r resumed for %r",
        live.name,
        owner.identity,
        extra={"room_name": live.name, "session_id": live.session_id},
    )
    send_contained(
        signals.session_resumed,
        state.app,
        room_name=live.name,
        identity=owner,
        session_id=live.session_id,
        room_sid=live.sid,
    )


def _room_settings(
    state: OnboardingState,
    name: str,
    metadata: str,
    envelope: Envelope,
    agents: list[AgentRequest],
) -> api.RoomConfiguration:
    """The LiveKit settings of an onboarding room: metadata, timeouts, agent dispatches.

    Every dispatch carries the envelope as job metadata: the room metadata itself, unless a
    client's own agent metadata or the request's trace context travels beside it.
    """
    config = state.config
    # The token request's trace travels with the dispatch, so the agent's job continues it.
    trace = state.telemetry.trace_headers()
    return api.RoomConfiguration(
        name=name,
        metadata=metadata,
        empty_timeout=config.empty_timeout,
        departure_timeout=config.departure_timeout,
        max_participants=config.max_participants,
        agents=[
            api.RoomAgentDispatch(
                agent_name=agent.agent_name,
                metadata=(
                    job_metadata(envelope, agent.metadata, trace)
                    if agent.metadata or trace
                    else metadata
                ),
                deployment=agent.deployment,
            )
            for agent in agents
        ],
    )


def _dispatched_agents(
    state: OnboardingState, requested: tuple[AgentRequest, ...]
) -> list[AgentRequest]:
    """The configured agent plus the agents a client asked for, if the deployment allows them.

    Every dispatch carries the server's envelope as job metadata; a client's own agent
    metadata travels beside it, marked as the client's, only where the deployment allows it.
    """
    config = state.config
    agents = [AgentRequest(config.agent_name)] if config.agent_name else []
    for index, agent in enumerate(requested):
        where = f"room_config.agents[{index}]"
        if agent.agent_name not in config.agent_names:
            raise Forbidden(
                f"Agent {agent.agent_name!r} may not be dispatched: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENTS.",
                field=f"{where}.agent_name",
            )
        if agent.deployment and agent.deployment not in config.allowed_agent_deployments:
            raise Forbidden(
                f"Agent deployment {agent.deployment!r} may not be requested: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENT_DEPLOYMENTS.",
                field=f"{where}.deployment",
            )
        if agent.metadata and not config.allow_client_agent_metadata:
            raise Forbidden(
                "Agents get their data from the server; this deployment does not let clients "
                "add agent metadata (LIVEKIT_ONBOARDING_ALLOW_CLIENT_AGENT_METADATA).",
                field=f"{where}.metadata",
            )
        agents = [a for a in agents if a.agent_name != agent.agent_name] + [agent]
    return agents
