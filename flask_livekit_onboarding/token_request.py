"""The standard token request: its fields, validated against LiveKit's limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from google.protobuf.json_format import ParseDict, ParseError
from livekit import api
from pydantic import BaseModel, ConfigDict, WithJsonSchema

from .config import MAX_METADATA_BYTES, MAX_NAME_LENGTH
from .errors import ValidationFailed
from .livekit_limits import (
    MAX_BODY_DEPTH,
    check_attributes,
    check_json,
    check_metadata,
    check_name,
    check_size,
)
from .validation import checked, validated

#: Fields of ``room_config`` a client may set; everything else is the deployment's choice.
CLIENT_ROOM_CONFIG_FIELDS = frozenset({"agents"})


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


#: LiveKit's limits on a name, as the OpenAPI document states them.
NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]*$",
    "description": (
        "At most 256 bytes of UTF-8 (as LiveKit counts), not blank, no control characters."
    ),
}
#: What a client may ask of LiveKit's ``RoomConfiguration`` (protobuf reads the rest).
ROOM_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Only agents[].agent_name, agents[].metadata and agents[].deployment may be requested."
    ),
    "properties": {
        "agents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "agent_name": {"type": "string", "minLength": 1},
                    "metadata": {"type": "string"},
                    "deployment": {"type": "string"},
                },
                "required": ["agent_name"],
                "additionalProperties": False,
            },
        }
    },
    "additionalProperties": False,
}


#: A name LiveKit accepts (identity, display name, room name); None: not sent.
LiveKitName = Annotated[str | None, checked(check_name), WithJsonSchema(NAME_SCHEMA)]


def _room_config(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed("room_config must be an object.", field="room_config")
    # protobuf's parser fails with a SystemError, not a ParseError, on a key it cannot encode.
    check_json(value, "room_config", MAX_BODY_DEPTH)
    return value


class TokenRequestBody(BaseModel):
    """The JSON body of LiveKit's standardized token request, as clients send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room_name: LiveKitName = None
    participant_identity: LiveKitName = None
    participant_name: LiveKitName = None
    participant_metadata: Annotated[
        str | None,
        checked(check_metadata),
        WithJsonSchema({"type": "string", "maxLength": MAX_METADATA_BYTES}),
    ] = None
    participant_attributes: Annotated[
        dict[str, str] | None,
        checked(check_attributes),
        WithJsonSchema({"type": "object", "additionalProperties": {"type": "string"}}),
    ] = None
    room_config: Annotated[
        dict[str, Any] | None,
        checked(_room_config),
        WithJsonSchema(ROOM_CONFIG_SCHEMA),
    ] = None


def parse_token_request(body: Mapping[str, Any]) -> TokenRequest:
    """Validate a token request body against LiveKit's limits; 422 names the bad field."""
    parsed = validated(TokenRequestBody, body)
    return TokenRequest(
        room_name=parsed.room_name,
        participant_identity=parsed.participant_identity,
        participant_name=parsed.participant_name,
        participant_metadata=parsed.participant_metadata,
        participant_attributes=parsed.participant_attributes,
        agents=_agents(parsed.room_config),
    )


def _agents(room_config: Any) -> tuple[AgentRequest, ...]:
    if room_config is None:
        return ()
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
