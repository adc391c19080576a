"""``POST {prefix}/token``: LiveKit's standardized token endpoint for onboarding rooms."""

from __future__ import annotations

from flask import Response, jsonify

from ..identity import token_identity
from ..sessions import issue_token as issue
from ..state import get_state
from ..token_request import parse_token_request
from .bodies import read_json_object


def issue_token() -> tuple[Response, int]:
    """Create (or rejoin) an onboarding room and return a participant token for it."""
    state = get_state()
    token_request = parse_token_request(read_json_object())
    identity = token_identity(state, token_request)
    issued = issue(state, identity, room_name=token_request.room_name, agents=token_request.agents)
    return jsonify(issued.response_body()), 201
