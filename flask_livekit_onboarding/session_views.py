"""Session management routes: status, context update and end of an onboarding room.

Every route asks the host's ``identity_loader`` who is calling (401 when nobody) and lets
through the room's owner, or whoever the ``room_authorizer`` allows for the action
(``"view"``, ``"update_context"``, ``"end"``); anybody else gets 403. Rooms that do not exist,
and LiveKit rooms that are not onboarding rooms, are 404 ``room_not_found`` alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from livekit import api

from . import signals
from .blueprint import add_route, refuse_other_methods
from .errors import RoomNotFound, ValidationFailed
from .hooks import Identity, RoomAction
from .identity import current_identity
from .room_metadata import OnboardingRoom
from .rooms import (
    authorize,
    delete_room,
    list_participants,
    live_room,
    metadata_with_context,
    update_room_metadata,
)
from .state import OnboardingState, get_state
from .token_request import read_json_object

logger = logging.getLogger(__name__)

#: How a PATCH combines its ``context`` with the room's current one.
CONTEXT_MODES = ("merge", "replace")


def register_session_routes(bp: Blueprint) -> None:
    """Add ``/rooms/<room_name>`` (GET, DELETE) and ``/rooms/<room_name>/context`` (PATCH)."""
    bp.add_url_rule("/rooms/<room_name>", "room_status", room_status, methods=["GET"])
    bp.add_url_rule("/rooms/<room_name>", "end_session", end_session, methods=["DELETE"])
    refuse_other_methods(bp, "/rooms/<room_name>", "room", ["GET", "DELETE"])
    add_route(bp, "/rooms/<room_name>/context", "update_context", update_context, ["PATCH"])


def room_status(room_name: str) -> Response:
    """``GET .../rooms/<room_name>``: the live room, who is in it and its onboarding context.

    200 ``{"room_name", "exists": true, "owner", "created_at" (unix seconds), "context",
    "num_participants", "participants": [{"identity", "name", "kind", "joined_at"}]}``, where
    ``kind`` is LiveKit's participant kind in lower case (``"standard"``, ``"agent"``, ...).
    """
    state = get_state()
    identity = current_identity(state)
    _, room = _onboarding_room(state, room_name, identity, "view")
    participants = [_participant(p) for p in list_participants(state, room.name)]
    return _no_store(
        jsonify(
            room_name=room.name,
            exists=True,
            owner=room.owner,
            created_at=room.created_at,
            context=dict(room.context),
            num_participants=len(participants),
            participants=participants,
        )
    )


def update_context(room_name: str) -> Response:
    """``PATCH .../rooms/<room_name>/context``: change the onboarding context of a live room.

    Body (``application/json``): ``{"context": {...}, "mode": "merge" | "replace"}``.
    ``merge`` (the default) applies ``context`` with JSON merge-patch rules (RFC 7386): keys
    are added or overwritten, nested objects are merged, and a ``null`` value removes the key.
    ``replace`` makes ``context`` the whole new context. The owner, version and creation time
    recorded in the metadata are kept. The result is written with LiveKit's
    ``UpdateRoomMetadata``, so connected participants and agents see it at once (a
    ``room_metadata_changed`` event in the SDKs). 200 ``{"room_name", "context"}``.

    Two updates racing on one room are last-writer-wins: LiveKit offers no compare-and-set.
    """
    state = get_state()
    identity = current_identity(state)
    patch, mode = _parse_context_patch(read_json_object(request))
    room_info, room = _onboarding_room(state, room_name, identity, "update_context")
    context = patch if mode == "replace" else _merge_patch(room.context, patch)
    metadata = metadata_with_context(room_info.metadata, context)
    update_room_metadata(state, room.name, metadata)
    logger.info("context of onboarding room %s updated by %s", room.name, identity.identity)
    signals.context_updated.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        room_name=room.name,
        identity=identity,
        context=context,
    )
    return _no_store(jsonify(room_name=room.name, context=context))


def end_session(room_name: str) -> Response:
    """``DELETE .../rooms/<room_name>``: close the room (``DeleteRoom``); everyone is disconnected.

    204 with no body. Ending is idempotent in effect: once the room is gone, a repeated
    DELETE answers 404 ``room_not_found``, which a client may treat as "already ended".
    """
    state = get_state()
    identity = current_identity(state)
    _, room = _onboarding_room(state, room_name, identity, "end")
    delete_room(state, room.name)
    logger.info("onboarding room %s ended by %s", room.name, identity.identity)
    signals.session_ended.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        room_name=room.name,
        identity=identity,
    )
    return _no_store(Response(status=204))


def _onboarding_room(
    state: OnboardingState, name: str, identity: Identity, action: RoomAction
) -> tuple[api.Room, OnboardingRoom]:
    """The live room and its onboarding record, if ``identity`` may do ``action`` (404 / 403)."""
    room_info = live_room(state, name)
    room = OnboardingRoom.from_room(room_info) if room_info is not None else None
    if room_info is None or room is None:
        raise RoomNotFound(f"No onboarding room named {name!r}.")
    authorize(state, identity, room, action)
    return room_info, room


def _parse_context_patch(body: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    unknown = sorted(set(body) - {"context", "mode"})
    if unknown:
        raise ValidationFailed(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    context = body.get("context")
    if not isinstance(context, dict):
        raise ValidationFailed("context must be a JSON object.", field="context")
    mode = body.get("mode", "merge")
    if mode not in CONTEXT_MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(CONTEXT_MODES)}.", field="mode")
    return context, mode


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target``."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


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


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
