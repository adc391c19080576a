"""``POST {prefix}/token``: LiveKit's standardized token endpoint for onboarding rooms."""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify, request

from . import signals
from .errors import ValidationFailed
from .identity import token_identity
from .rooms import require_room, start_room
from .state import get_state
from .token_request import parse_token_request, read_json_object
from .tokens import mint_participant_token

logger = logging.getLogger(__name__)


def issue_token() -> tuple[Response, int]:
    """Create (or rejoin) an onboarding room and return a participant token for it."""
    state = get_state()
    token_request = parse_token_request(read_json_object(request))
    identity = token_identity(state, token_request)
    room_config = None
    if token_request.room_name is not None:
        if token_request.agents:
            raise ValidationFailed(
                "room_config.agents applies to new rooms only; omit room_name to start one.",
                field="room_config.agents",
            )
        room_name = require_room(state, token_request.room_name, identity, "join").name
    else:
        provider = state.extension.context_provider_function
        context = dict(provider(identity)) if provider is not None else {}
        room_name, room_config = start_room(state, identity.identity, context, token_request.agents)
        logger.info("onboarding room %s created for %s", room_name, identity.identity)
        signals.room_created.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            room_name=room_name,
            identity=identity,
            context=context,
            mode=state.config.room_creation,
        )
    name = identity.name or identity.identity
    token = mint_participant_token(
        state.config,
        room_name=room_name,
        identity=identity.identity,
        name=name,
        metadata=identity.metadata,
        attributes=identity.attributes,
        room_config=room_config,
    )
    signals.token_issued.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        room_name=room_name,
        identity=identity,
        participant_name=name,
        expires_in=state.config.token_ttl,
    )
    response = jsonify(
        server_url=state.config.public_url,
        participant_token=token,
        room_name=room_name,
        participant_name=name,
    )
    response.headers["Cache-Control"] = "no-store"
    return response, 201
