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
from ..identity import current_identity
from ..state import get_state
from .bodies import parse_context_update, read_json_object


def room_status(room_name: str) -> Response:
    """``GET .../rooms/<room_name>``: the live room, who is in it and its onboarding context.

    200 ``{"room_name", "exists": true, "owner", "created_at" (unix seconds), "context",
    "num_participants", "participants": [{"identity", "name", "kind", "joined_at"}]}``, where
    ``kind`` is LiveKit's participant kind in lower case (``"standard"``, ``"agent"``, ...).
    """
    state = get_state()
    status = sessions.session_status(state, current_identity(state), room_name)
    participants = [_participant(p) for p in status.participants]
    return jsonify(
        room_name=status.room.name,
        exists=True,
        owner=status.room.owner,
        created_at=status.room.created_at,
        context=dict(status.room.context),
        num_participants=len(participants),
        participants=participants,
    )


def update_context(room_name: str) -> Response:
    """``PATCH .../rooms/<room_name>/context``: change the onboarding context of a live room.

    Body (``application/json``): ``{"context": {...}, "mode": "merge" | "replace"}``.
    ``merge`` (the default) applies ``context`` with JSON merge-patch rules (RFC 7386): keys
    are added or overwritten, nested objects are merged, and a ``null`` value removes the key.
    ``replace`` makes ``context`` the whole new context. The owner, version and creation time
    recorded in the metadata are kept. 200 ``{"room_name", "context"}``.
    """
    state = get_state()
    identity = current_identity(state)
    patch, mode = parse_context_update(read_json_object())
    context = sessions.update_context(state, identity, room_name, patch, mode)
    return jsonify(room_name=room_name, context=context)


def end_session(room_name: str) -> Response:
    """``DELETE .../rooms/<room_name>``: close the room (``DeleteRoom``); everyone is disconnected.

    204 with no body. Once the room is gone, a repeated DELETE answers 404 ``room_not_found``,
    which a client may treat as "already ended".
    """
    state = get_state()
    sessions.end_session(state, current_identity(state), room_name)
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
    }
