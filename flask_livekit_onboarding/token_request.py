"""The standard token request: its fields, validated against LiveKit's limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.json_format import ParseDict, ParseError
from livekit import api

from .errors import ValidationFailed
from .limits import (
    MAX_BODY_DEPTH,
    check_attributes,
    check_json,
    check_metadata,
    check_name,
    check_size,
)

T = TypeVar("T")

#: Fields of ``room_config`` a client may set; everything else is the deployment's choice.
CLIENT_ROOM_CONFIG_FIELDS = frozenset({"agents"})
TOKEN_REQUEST_FIELDS = frozenset(
    {
        "room_name",
        "participant_identity",
        "participant_name",
        "participant_metadata",
        "participant_attributes",
        "room_config",
    }
)


@dataclass(frozen=True)
class AgentRequest:
    """An agent a client asks to have dispatched into its new room."""

    agent_name: str
    metadata: str = ""
    #: LiveKit Cloud's agent deployment, as livekit-client's TokenSource sends it.
    deployment: str = ""


@dataclass(frozen=True)
class TokenRequest:
    """The body of LiveKit's standardized token request, validated."""

    room_name: str | None = None
    participant_identity: str | None = None
    participant_name: str | None = None
    participant_metadata: str | None = None
    participant_attributes: Mapping[str, str] | None = None
    agents: tuple[AgentRequest, ...] = field(default_factory=tuple)


def parse_token_request(body: Mapping[str, Any]) -> TokenRequest:
    """Validate a token request body against LiveKit's limits; 422 names the bad field."""
    unknown = sorted(set(body) - TOKEN_REQUEST_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    return TokenRequest(
        room_name=_optional(body, "room_name", check_name),
        participant_identity=_optional(body, "participant_identity", check_name),
        participant_name=_optional(body, "participant_name", check_name),
        participant_metadata=_optional(body, "participant_metadata", check_metadata),
        participant_attributes=_optional(body, "participant_attributes", check_attributes),
        agents=_agents(body.get("room_config")),
    )


def _optional(body: Mapping[str, Any], key: str, check: Callable[[Any, str], T]) -> T | None:
    value = body.get(key)
    return None if value is None else check(value, key)


def _agents(room_config: Any) -> tuple[AgentRequest, ...]:
    if room_config is None:
        return ()
    if not isinstance(room_config, dict):
        raise ValidationFailed("room_config must be an object.", field="room_config")
    # protobuf's parser fails with a SystemError, not a ParseError, on a key it cannot encode.
    check_json(room_config, "room_config", MAX_BODY_DEPTH)
    try:
        parsed = ParseDict(room_config, api.RoomConfiguration())
    except ParseError as error:
        raise ValidationFailed(f"room_config is invalid: {error}", field="room_config") from None
    for descriptor, _ in parsed.ListFields():
        if descriptor.name not in CLIENT_ROOM_CONFIG_FIELDS:
            raise ValidationFailed(
                f"room_config.{descriptor.name} is set by the server and cannot be requested.",
                field=f"room_config.{descriptor.name}",
            )
    agents = []
    for index, agent in enumerate(parsed.agents):
        where = f"room_config.agents[{index}]"
        for descriptor, _ in agent.ListFields():
            if descriptor.name not in {"agent_name", "metadata", "deployment"}:
                raise ValidationFailed(
                    f"{where}.{descriptor.name} cannot be requested.",
                    field=f"{where}.{descriptor.name}",
                )
        if not agent.agent_name:
            raise ValidationFailed(f"{where}.agent_name is required.", field=f"{where}.agent_name")
        check_size(agent.metadata, f"{where}.metadata")
        agents.append(AgentRequest(agent.agent_name, agent.metadata, agent.deployment))
    return tuple(agents)
