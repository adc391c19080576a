"""Reading and validating request bodies: the standard token request and its limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Request
from google.protobuf.json_format import ParseDict, ParseError
from livekit import api

from .config import MAX_METADATA_BYTES, MAX_NAME_LENGTH
from .errors import BadRequest, UnsupportedMediaType, ValidationFailed

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


@dataclass(frozen=True)
class TokenRequest:
    """The body of LiveKit's standardized token request, validated."""

    room_name: str | None = None
    participant_identity: str | None = None
    participant_name: str | None = None
    participant_metadata: str | None = None
    participant_attributes: Mapping[str, str] | None = None
    agents: tuple[AgentRequest, ...] = field(default_factory=tuple)


def read_json_object(request: Request) -> dict[str, Any]:
    """Return the request's JSON object; an empty body counts as ``{}``.

    Wrong content type -> 415, invalid JSON or not an object -> 400. Size is capped by
    ``request.max_content_length`` (413), set by the blueprint.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no content type'}."
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def parse_token_request(body: Mapping[str, Any]) -> TokenRequest:
    """Validate a token request body against LiveKit's limits; 422 names the bad field."""
    unknown = sorted(set(body) - TOKEN_REQUEST_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    attributes = body.get("participant_attributes")
    return TokenRequest(
        room_name=optional_name(body, "room_name"),
        participant_identity=optional_name(body, "participant_identity"),
        participant_name=optional_name(body, "participant_name"),
        participant_metadata=optional_metadata(body, "participant_metadata"),
        participant_attributes=None if attributes is None else check_attributes(attributes),
        agents=_agents(body.get("room_config")),
    )


def optional_name(body: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string of at most 256 characters, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{key} must be a non-empty string.", field=key)
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"{key} is longer than {MAX_NAME_LENGTH} characters.", field=key)
    return value


def optional_metadata(body: Mapping[str, Any], key: str) -> str | None:
    """A string within LiveKit's 64 KiB metadata limit, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{key} must be a string.", field=key)
    check_size(value, key)
    return value


def check_size(value: str, key: str) -> None:
    """Refuse a value over LiveKit's 64 KiB limit for metadata and attributes."""
    if len(value.encode()) > MAX_METADATA_BYTES:
        raise ValidationFailed(f"{key} is larger than 64 KiB.", field=key)


def check_attributes(value: Any, key: str = "participant_attributes") -> dict[str, str]:
    """A flat string-to-string object within 64 KiB in total."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationFailed(f"{key} must be an object of string values.", field=key)
    check_size(json.dumps(value), key)
    return dict(value)


def _agents(room_config: Any) -> tuple[AgentRequest, ...]:
    if room_config is None:
        return ()
    if not isinstance(room_config, dict):
        raise ValidationFailed("room_config must be an object.", field="room_config")
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
            if descriptor.name not in {"agent_name", "metadata"}:
                raise ValidationFailed(
                    f"{where}.{descriptor.name} cannot be requested.",
                    field=f"{where}.{descriptor.name}",
                )
        if not agent.agent_name:
            raise ValidationFailed(f"{where}.agent_name is required.", field=f"{where}.agent_name")
        check_size(agent.metadata, f"{where}.metadata")
        agents.append(AgentRequest(agent.agent_name, agent.metadata))
    return tuple(agents)
