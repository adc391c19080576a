"""Session management routes: status, context update and end of an onboarding room.

Every route asks the host's ``identity_loader`` who is calling (401 when nobody) and lets
through the room's owner, or whoever the ``room_authorizer`` allows for the action
(``"view"``, ``"update_context"``, ``"end"``); anybody else gets 403. Rooms that do not exist,
and LiveKit rooms that are not onboarding rooms, are 404 ``room_not_found`` alike.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from livekit import api

from .. import sessions
from ..identity import current_caller
from ..roles import role_of
from ..state import get_state
from .bodies import parse_context_update, read_json_object


def show_room(room_name: str) -> Response:
    """``GET .../rooms/<room_name>``: the live room, who is in it and its onboarding context.

    200 ``{"room_name", "exists", "started", "session_id", "room_sid", "owner", "created_at"
    (unix seconds), "context", "client", "reports", "num_participants", "participants":
    [{"identity", "name", "kind", "joined_at", "role"}]}``, where ``kind`` is LiveKit's
    participant kind in lower case (``"standard"``, ``"agent"``, ...) and ``role`` the role the
    server gave it (``"owner"``, ``"staff"``, ``"participant"``, ``"viewer"``, ``"agent"``; null
    for others). The caller's own ``on_join`` session whose room nobody has joined yet answers
    ``"exists": false, "started": false`` (LiveKit creates it at the first join);
    ``session_id`` and ``room_sid`` tell one session from the next.
    """
    state = get_state()
    status = sessions.session_status(state, current_caller(state), room_name)
    participants = [_participant(p) for p in status.participants]
    return jsonify(
        room_name=status.room.name,
        exists=status.started,
        started=status.started,
        session_id=status.room.session_id or None,
        room_sid=status.room.sid or None,
        owner=status.room.owner,
        created_at=status.room.created_at or None,
        context=dict(status.room.context),
        client=dict(status.room.client),
        reports=dict(status.room.reports),
        num_participants=len(participants),
        participants=participants,
    )


def patch_context(room_name: str) -> Response:
    """``PATCH .../rooms/<room_name>/context``: change the onboarding context of a live room.

    Body (``application/json``): ``{"context"?: {...}, "client"?: {...}, "mode": "merge" |
    "replace"}``. ``context`` is the host's word: only callers the ``room_authorizer`` allows
    ``update_context`` (staff) may change it, not the room's owner. ``client`` holds notes the
    owner (or ``update_client`` via the authorizer) may write; it is always merged, and the
    envelope keeps it apart from the context. ``merge`` (the default) applies ``context`` with
    JSON merge-patch rules (RFC 7386); ``replace`` makes it the whole new context. Owner,
    session and creation time are kept. 200 ``{"room_name", "context", "client"}``.
    """
    state = get_state()
    caller = current_caller(state)
    context, client, mode = parse_context_update(read_json_object())
    room = sessions.update_context(state, caller, room_name, context, mode, client=client)
    return jsonify(room_name=room.name, context=dict(room.context), client=dict(room.client))


def delete_session(room_name: str) -> Response:
    """``DELETE .../rooms/<room_name>``: close the room (``DeleteRoom``); everyone is disconnected.

    204 with no body. Once the room is gone, a repeated DELETE answers 404 ``room_not_found``,
    which a client may treat as "already ended".
    """
    state = get_state()
    sessions.end_session(state, current_caller(state), room_name)
    return Response(status=204)


def _participant(info: api.ParticipantInfo) -> dict[str, Any]:
    try:
        kind = api.ParticipantInfo.Kind.Name(info.kind).lower()
    except ValueError:
        kind = "unknown"
    return {
        "identity": info.identity,
        "name": info.name,
        "kind": kind,
        "joined_at": info.joined_at,
        "role": role_of(info),
    }
