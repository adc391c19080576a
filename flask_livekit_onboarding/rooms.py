"""Onboarding rooms on LiveKit: naming, creating, finding and authorising access."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from livekit import api

from .config import MAX_METADATA_BYTES
from .errors import ConfigurationError, Forbidden, RoomNotFound, ValidationFailed
from .hooks import Identity, RoomAction
from .livekit_bridge import LiveKitCall
from .room_metadata import METADATA_KEY, OnboardingRoom, encode_metadata
from .state import OnboardingState
from .token_request import AgentRequest

T = TypeVar("T")


def new_room_name(prefix: str) -> str:
    """A fresh room name: the configured prefix and 128 random bits."""
    return prefix + secrets.token_urlsafe(16)


def onboarding_metadata(owner: str, context: Mapping[str, Any]) -> str:
    """The room metadata for a new room, refusing a context LiveKit could not store."""
    try:
        metadata = encode_metadata(owner, context, int(time.time()))
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"context_provider returned a non-JSON value: {error}") from None
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        raise ConfigurationError("context_provider returned a context larger than 64 KiB")
    return metadata


def room_configuration(
    state: OnboardingState, name: str, metadata: str, agents: Iterable[AgentRequest]
) -> api.RoomConfiguration:
    """The LiveKit room settings of a new onboarding room."""
    config = state.config
    return api.RoomConfiguration(
        name=name,
        metadata=metadata,
        empty_timeout=config.empty_timeout,
        departure_timeout=config.departure_timeout,
        max_participants=config.max_participants,
        agents=[
            api.RoomAgentDispatch(agent_name=a.agent_name, metadata=a.metadata) for a in agents
        ],
    )


def dispatched_agents(
    state: OnboardingState, requested: Iterable[AgentRequest]
) -> list[AgentRequest]:
    """The configured agent plus the agents a client asked for, if the deployment allows them."""
    config = state.config
    agents = [AgentRequest(config.agent_name)] if config.agent_name else []
    for index, agent in enumerate(requested):
        if agent.agent_name not in config.agent_names:
            field = f"room_config.agents[{index}].agent_name"
            raise Forbidden(
                f"Agent {agent.agent_name!r} may not be dispatched: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENTS.",
                field=field,
            )
        agents = [a for a in agents if a.agent_name != agent.agent_name] + [agent]
    return agents


def create_room(state: OnboardingState, settings: api.RoomConfiguration) -> None:
    """Create the room on LiveKit now (``eager`` mode), with its metadata and agents."""
    request = api.CreateRoomRequest(
        name=settings.name,
        metadata=settings.metadata,
        empty_timeout=settings.empty_timeout,
        departure_timeout=settings.departure_timeout,
        max_participants=settings.max_participants,
        agents=settings.agents,
    )
    state.bridge.call(lambda lk: lk.room.create_room(request))


def find_room(state: OnboardingState, name: str) -> OnboardingRoom | None:
    """The onboarding room called ``name``, or None if LiveKit has no such onboarding room."""
    room = live_room(state, name)
    return None if room is None else OnboardingRoom.from_room(room)


def list_rooms(state: OnboardingState) -> list[OnboardingRoom]:
    """Every live onboarding room on the LiveKit server (other rooms are left out)."""
    response = state.bridge.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest()))
    rooms = (OnboardingRoom.from_room(room) for room in response.rooms)
    return sorted((r for r in rooms if r is not None), key=lambda r: r.created_at)


def authorize(
    state: OnboardingState, identity: Identity, room: OnboardingRoom, action: RoomAction
) -> None:
    """Let the owner through; ask the host's ``room_authorizer`` about anybody else (403)."""
    if room.owner == identity.identity:
        return
    authorizer = state.extension.room_authorizer_function
    if authorizer is not None and authorizer(identity, room, action):
        return
    raise Forbidden(f"This onboarding room belongs to someone else; {action} is not allowed.")


def require_room(
    state: OnboardingState, name: str, identity: Identity, action: RoomAction
) -> OnboardingRoom:
    """The room ``name`` if it is an onboarding room ``identity`` may use (404 / 403)."""
    room = find_room(state, name)
    if room is None:
        raise RoomNotFound(f"No onboarding room named {name!r}.")
    authorize(state, identity, room, action)
    return room


def live_room(state: OnboardingState, name: str) -> api.Room | None:
    """The LiveKit room called ``name`` as LiveKit reports it, onboarding room or not."""
    request = api.ListRoomsRequest(names=[name])
    response = _room_call(state, name, lambda lk: lk.room.list_rooms(request))
    return next((room for room in response.rooms if room.name == name), None)


def list_participants(state: OnboardingState, name: str) -> list[api.ParticipantInfo]:
    """Everyone in room ``name`` right now, agents included (404 once the room is gone)."""
    request = api.ListParticipantsRequest(room=name)
    response = _room_call(state, name, lambda lk: lk.room.list_participants(request))
    return list(response.participants)


def update_room_metadata(state: OnboardingState, name: str, metadata: str) -> api.Room:
    """Write the metadata of room ``name``; LiveKit pushes it to every connected participant."""
    request = api.UpdateRoomMetadataRequest(room=name, metadata=metadata)
    return _room_call(state, name, lambda lk: lk.room.update_room_metadata(request))


def delete_room(state: OnboardingState, name: str) -> None:
    """Close room ``name`` on LiveKit, disconnecting everyone in it (404 if already gone)."""
    request = api.DeleteRoomRequest(room=name)
    _room_call(state, name, lambda lk: lk.room.delete_room(request))


def _room_call(state: OnboardingState, name: str, fn: LiveKitCall[T]) -> T:
    """Call LiveKit about one room; its ``not_found`` becomes our 404."""
    try:
        return state.bridge.call(fn)
    except api.TwirpError:
        raise RoomNotFound(f"No onboarding room named {name!r}.") from None


def metadata_with_context(metadata: str, context: Mapping[str, Any]) -> str:
    """``metadata`` with its onboarding context replaced and every other field kept as it was.

    Refuses (422 naming ``context``) a result LiveKit could not store: over 64 KiB, or with
    values JSON has no spelling for (NaN, Infinity).
    """
    document = json.loads(metadata)
    document[METADATA_KEY]["context"] = dict(context)
    try:
        updated = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValidationFailed(
            "context must be plain JSON (no NaN or Infinity).", field="context"
        ) from None
    if len(updated.encode()) > MAX_METADATA_BYTES:
        raise ValidationFailed(
            "context makes the room metadata larger than LiveKit's 64 KiB.", field="context"
        )
    return updated


def start_room(
    state: OnboardingState,
    owner: str,
    context: Mapping[str, Any],
    requested_agents: Iterable[AgentRequest] = (),
) -> tuple[str, api.RoomConfiguration | None]:
    """Start a new onboarding room owned by ``owner``; return its name and token room config.

    In ``eager`` mode the room is created on LiveKit now and the config is None; in
    ``on_join`` mode nothing is called and the config goes into the participant token.
    """
    agents = dispatched_agents(state, requested_agents)
    name = new_room_name(state.config.room_prefix)
    settings = room_configuration(state, name, onboarding_metadata(owner, context), agents)
    if state.config.room_creation == "eager":
        create_room(state, settings)
        return name, None
    return name, settings
