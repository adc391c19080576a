"""The standard token request: its fields, validated against LiveKit's limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from google.protobuf.json_format import ParseDict, ParseError
from livekit import api
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError

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
M = TypeVar("M", bound=BaseModel)

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


def _checked(check: Callable[[Any, str], T], key: str) -> BeforeValidator:
    """A pydantic validator running ``check``; its 422 message and field travel in the error."""

    def validate(value: Any) -> T | None:
        if value is None:
            return None
        try:
            return check(value, key)
        except ValidationFailed as error:
            raise PydanticCustomError(
                "livekit_limit", "{message}", {"message": error.description, "field": error.field}
            ) from None

    return BeforeValidator(validate)


def _room_config(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed("room_config must be an object.", field="room_config")
    # protobuf's parser fails with a SystemError, not a ParseError, on a key it cannot encode.
    check_json(value, "room_config", MAX_BODY_DEPTH)
    return value


class TokenRequestBody(BaseModel):
    """The JSON body of LiveKit's standardized token request, as clients send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room_name: Annotated[str | None, _checked(check_name, "room_name")] = None
    participant_identity: Annotated[str | None, _checked(check_name, "participant_identity")] = None
    participant_name: Annotated[str | None, _checked(check_name, "participant_name")] = None
    participant_metadata: Annotated[
        str | None, _checked(check_metadata, "participant_metadata")
    ] = None
    participant_attributes: Annotated[
        dict[str, str] | None, _checked(check_attributes, "participant_attributes")
    ] = None
    #: Of LiveKit's ``RoomConfiguration``, a client may only ask for ``agents``.
    room_config: Annotated[dict[str, Any] | None, _checked(_room_config, "room_config")] = None


def validated(model: type[M], body: Mapping[str, Any]) -> M:
    """``body`` as ``model``, or a 422 naming the field as the error bodies always have."""
    try:
        return model.model_validate(body)
    except PydanticError as failure:
        raise _first_problem(failure) from None


def _first_problem(failure: PydanticError) -> ValidationFailed:
    errors = failure.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return ValidationFailed(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    error = errors[0]
    context = error.get("ctx") or {}
    if "message" in context:
        return ValidationFailed(context["message"], field=context.get("field"))
    where = _location(error["loc"])
    return ValidationFailed(f"{where} is invalid: {error['msg']}.", field=where)


def _location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the error bodies name fields: ``a.b[0].c``."""
    text = ""
    for part in loc:
        text = f"{text}[{part}]" if isinstance(part, int) else f"{text}.{part}".lstrip(".")
    return text


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
