"""``POST {prefix}/token``: LiveKit's standardized token endpoint for onboarding rooms."""

from __future__ import annotations

from flask import Response, jsonify, request

from ..errors import UnsupportedMediaType
from ..identity import current_caller, participant_identity
from ..invites import INVITE_HEADER, redeem_invite
from ..state import get_state
from ..token_flow import issue_token
from ..token_request import parse_token_request
from .bodies import read_json_object


def serve_token() -> tuple[Response, int]:
    """Start or resume the caller's onboarding session and return a participant token for it.

    The body must be sent as ``application/json``, even when empty, as the official SDKs do:
    a cross-site form or ``text/plain`` post cannot start a session (no CORS preflight).
    With an invite's code in the ``X-Onboarding-Invite`` header, the caller joins the
    invite's session instead (:func:`~flask_livekit_onboarding.invites.redeem_invite`).
    """
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no content type'}."
        )
    state = get_state()
    code = request.headers.get(INVITE_HEADER)
    if code is not None:
        issued = redeem_invite(state, code, parse_token_request(read_json_object()))
        return jsonify(issued.response_body()), 201
    # Who is calling comes first: a caller who is refused costs no more than the refusal.
    caller = current_caller(state)
    token_request = parse_token_request(read_json_object())
    issued = issue_token(
        state,
        caller,
        participant=participant_identity(state, caller.person, token_request),
        room_name=token_request.room_name,
        agents=token_request.agents,
    )
    return jsonify(issued.response_body()), 201
