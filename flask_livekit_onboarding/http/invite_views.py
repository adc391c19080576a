"""Invite routes: create, list and revoke the invites of an onboarding session.

The room's owner, and whoever the ``room_authorizer`` allows ``"invite"`` (staff), may use
them; anybody else gets 403. Invites are redeemed at ``POST {prefix}/token`` with the code
in the ``X-Onboarding-Invite`` header (:mod:`..token_view`).
"""

from __future__ import annotations

from flask import Response, jsonify, request

from .. import invites
from ..errors import UnsupportedMediaType
from ..identity import current_caller
from ..invite_request import parse_invite_options
from ..state import get_state
from .bodies import read_json_object
from .tracing import room_span


@room_span("onboarding.invite.create")
def post_invite(room_name: str) -> tuple[Response, int]:
    """``POST .../rooms/<room_name>/invites``: invite somebody into the live session.

    Body (``application/json``, every field optional): ``{"role": "participant" | "viewer",
    "ttl": seconds, "max_uses": n, "label": "...", "guests": bool}``. 201 with the invite,
    its ``code`` and its ``link`` (None unless ``LIVEKIT_ONBOARDING_INVITE_URL`` is set);
    the code is never shown again. The body must be sent as ``application/json``, even when
    empty: a cross-site form cannot create invites (no CORS preflight).
    """
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no content type'}."
        )
    state = get_state()
    caller = current_caller(state)
    options = parse_invite_options(read_json_object(), state.config.invite_max_ttl)
    created = invites.create_invite(state, caller, room_name, options)
    return jsonify(created.response_body()), 201


@room_span("onboarding.invite.list")
def get_invites(room_name: str) -> Response:
    """``GET .../rooms/<room_name>/invites``: the session's invites that can still admit
    somebody, oldest first, as ``{"invites": [...]}``; never their codes."""
    state = get_state()
    found = invites.list_invites(state, current_caller(state), room_name)
    return jsonify(invites=[invites.invite_body(invite) for invite in found])


@room_span("onboarding.invite.revoke")
def delete_invite(room_name: str, invite_id: str) -> Response:
    """``DELETE .../rooms/<room_name>/invites/<invite_id>``: revoke it at once (204).

    Nobody new gets in with it, and whoever joined with it is disconnected.
    """
    state = get_state()
    invites.revoke_invite(state, current_caller(state), room_name, invite_id)
    return Response(status=204)
