"""The onboarding use cases: start or join with a token, view, update the context, end.

The HTTP views and the CLI call these with the app's state and the caller's identity, so each
rule (access, limits, room settings, signals) lives here once. ``identity`` None stands for
the operator at the command line, who may act on any onboarding room.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Flask, current_app
from livekit import api

from . import signals
from .access import require_room
from .config import MAX_METADATA_BYTES
from .envelope import OnboardingRoom, encode_metadata, metadata_with_context
from .errors import ConfigurationError, Forbidden, ValidationFailed
from .hooks import Identity
from .rooms import create_room, delete_room, list_participants, list_rooms, update_room_metadata
from .state import OnboardingState
from .token_request import AgentRequest
from .tokens import mint_participant_token

logger = logging.getLogger(__name__)

#: How a context update combines with the room's current context.
ContextMode = Literal["merge", "replace"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("merge", "replace")


@dataclass(frozen=True)
class IssuedToken:
    """A participant token and what a client needs with it."""

    server_url: str
    participant_token: str = field(repr=False)
    room_name: str
    participant_name: str
    expires_in: int

    def response_body(self) -> dict[str, str]:
        """The body of LiveKit's standardized token response."""
        return {
            "server_url": self.server_url,
            "participant_token": self.participant_token,
            "room_name": self.room_name,
            "participant_name": self.participant_name,
        }


@dataclass(frozen=True)
class SessionStatus:
    """A live onboarding room and who is in it."""

    room: OnboardingRoom
    participants: list[api.ParticipantInfo]


def issue_token(
    state: OnboardingState,
    identity: Identity,
    *,
    room_name: str | None = None,
    agents: Iterable[AgentRequest] = (),
    context: Mapping[str, Any] | None = None,
    ttl: int | None = None,
    as_operator: bool = False,
) -> IssuedToken:
    """Start a new onboarding room for ``identity`` (or join ``room_name``) and mint its token.

    ``context`` replaces the host's ``context_provider`` for a new room; ``as_operator`` skips
    the access check for a named room (the CLI).
    """
    agents = tuple(agents)
    room_config = None
    if room_name is not None:
        if agents:
            raise ValidationFailed(
                "room_config.agents applies to new rooms only; omit room_name to start one.",
                field="room_config.agents",
            )
        room_name = require_room(state, room_name, None if as_operator else identity, "join").name
    else:
        if context is None:
            provider = state.hooks.context_provider
            context = dict(provider(identity)) if provider is not None else {}
        room_name, room_config = _start_room(state, identity.identity, context, agents)
        logger.info("onboarding room %s created for %s", room_name, identity.identity)
        signals.room_created.send(
            _app(),
            room_name=room_name,
            identity=identity,
            context=context,
            mode=state.config.room_creation,
        )
    name = identity.name or identity.identity
    expires_in = ttl or state.config.token_ttl
    token = mint_participant_token(
        state.config,
        room_name=room_name,
        identity=identity.identity,
        name=name,
        metadata=identity.metadata,
        attributes=identity.attributes,
        room_config=room_config,
        ttl=expires_in,
    )
    signals.token_issued.send(
        _app(),
        room_name=room_name,
        identity=identity,
        participant_name=name,
        expires_in=expires_in,
    )
    return IssuedToken(state.config.public_url, token, room_name, name, expires_in)


def session_status(state: OnboardingState, identity: Identity, room_name: str) -> SessionStatus:
    """The onboarding room ``room_name`` and its participants, if ``identity`` may view it."""
    room = require_room(state, room_name, identity, "view")
    return SessionStatus(room, list_participants(state.livekit, room.name))


def update_context(
    state: OnboardingState,
    identity: Identity,
    room_name: str,
    patch: Mapping[str, Any],
    mode: ContextMode = "merge",
) -> dict[str, Any]:
    """Merge ``patch`` into (or replace) the room's context; return the new context.

    ``merge`` follows JSON merge-patch rules (RFC 7386). The result is written with LiveKit's
    ``UpdateRoomMetadata``, so connected participants and agents see it at once.
    """
    room = require_room(state, room_name, identity, "update_context")
    context = dict(patch) if mode == "replace" else merge_patch(room.context, patch)
    try:
        metadata = metadata_with_context(room.metadata, context)
    except ValueError:
        raise ValidationFailed(
            "context must be plain JSON (no NaN or Infinity).", field="context"
        ) from None
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        raise ValidationFailed(
            "context makes the room metadata larger than LiveKit's 64 KiB.", field="context"
        )
    update_room_metadata(state.livekit, room.name, metadata)
    logger.info("context of onboarding room %s updated by %s", room.name, identity.identity)
    signals.context_updated.send(_app(), room_name=room.name, identity=identity, context=context)
    return context


def end_session(
    state: OnboardingState, identity: Identity | None, room_name: str
) -> OnboardingRoom:
    """Close the onboarding room ``room_name``; everyone in it is disconnected."""
    room = require_room(state, room_name, identity, "end")
    delete_room(state.livekit, room.name)
    ended_by = identity.identity if identity is not None else "the operator"
    logger.info("onboarding room %s ended by %s", room.name, ended_by)
    signals.session_ended.send(_app(), room_name=room.name, identity=identity)
    return room


def list_sessions(state: OnboardingState) -> list[OnboardingRoom]:
    """Every live onboarding room, oldest first."""
    return list_rooms(state.livekit)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target``."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _start_room(
    state: OnboardingState,
    owner: str,
    context: Mapping[str, Any],
    requested_agents: tuple[AgentRequest, ...],
) -> tuple[str, api.RoomConfiguration | None]:
    """Start a new onboarding room owned by ``owner``; return its name and token room config.

    In ``eager`` mode the room is created on LiveKit now and the config is None; in
    ``on_join`` mode nothing is called and the config goes into the participant token.
    """
    config = state.config
    agents = _dispatched_agents(state, requested_agents)
    name = config.room_prefix + secrets.token_urlsafe(16)
    settings = api.RoomConfiguration(
        name=name,
        metadata=_new_room_metadata(owner, context),
        empty_timeout=config.empty_timeout,
        departure_timeout=config.departure_timeout,
        max_participants=config.max_participants,
        agents=[
            api.RoomAgentDispatch(agent_name=a.agent_name, metadata=a.metadata) for a in agents
        ],
    )
    if config.room_creation == "eager":
        create_room(state.livekit, settings)
        return name, None
    return name, settings


def _new_room_metadata(owner: str, context: Mapping[str, Any]) -> str:
    """The room metadata for a new room, refusing a context LiveKit could not store."""
    try:
        metadata = encode_metadata(owner, context, int(time.time()))
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"context_provider returned a non-JSON value: {error}") from None
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        raise ConfigurationError("context_provider returned a context larger than 64 KiB")
    return metadata


def _dispatched_agents(
    state: OnboardingState, requested: tuple[AgentRequest, ...]
) -> list[AgentRequest]:
    """The configured agent plus the agents a client asked for, if the deployment allows them."""
    config = state.config
    agents = [AgentRequest(config.agent_name)] if config.agent_name else []
    for index, agent in enumerate(requested):
        if agent.agent_name not in config.agent_names:
            raise Forbidden(
                f"Agent {agent.agent_name!r} may not be dispatched: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENTS.",
                field=f"room_config.agents[{index}].agent_name",
            )
        agents = [a for a in agents if a.agent_name != agent.agent_name] + [agent]
    return agents


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined, no-any-return]
