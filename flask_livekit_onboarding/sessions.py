"""Session operations: an onboarding session's status, its context, its end, the live list.

The HTTP views, the CLI and the host's own code call these with the app's state and the
:class:`~.caller.Caller`, so each rule (access, limits, signals) lives here once. Starting,
resuming or joining a session with a token is :mod:`.token_flow`'s job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from livekit import api

from . import signals
from .access import authorize, require_room, room_or_404
from .caller import Caller
from .claims import ENDED_KEY, clear, find_squatter, occupied_message, squatter
from .envelope import Envelope, OnboardingRoom
from .errors import ApiError, RoomNotFound, RoomOccupied, ValidationFailed
from .livekit_limits import check_client_notes, check_stored_json, room_metadata
from .locks import confirm_metadata, lock_bounds
from .marks import ENDED_ROOM, REVOKED_GUEST
from .rooms import (
    cancel_dispatches,
    close_stale_room,
    create_room,
    delete_room,
    list_participants,
    list_rooms,
    live_room,
    update_room_metadata,
)
from .signals import send_contained
from .state import OnboardingState
from .summaries import abandon_summary, begin_summary, finish_summary, note_participants
from .tokens import JOIN_GRACE

logger = logging.getLogger(__name__)

#: How a context update combines with the room's current context.
ContextMode = Literal["merge", "replace"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("merge", "replace")


@dataclass(frozen=True)
class SessionStatus:
    """An onboarding room and who is in it; ``started`` False for an ``on_join`` room that
    nobody has joined yet (its token is out, LiveKit creates it at the first join)."""

    room: OnboardingRoom
    participants: list[api.ParticipantInfo]
    started: bool = True


def session_status(state: OnboardingState, caller: Caller, room_name: str) -> SessionStatus:
    """The onboarding room ``room_name`` and its participants, if ``caller`` may view it.

    The caller's own ``on_join`` room that nobody has joined yet is reported as not started,
    as is whatever their next start replaces (an ended session's marker, an empty room); a
    room under their name that strangers hold answers 409 saying what it is.
    """
    binding = state.config.binding
    own = caller.identity
    if own is not None and room_name == binding.room_name_for(own.identity):
        info = live_room(state.livekit, room_name)
        if info is not None and binding.stale(info):
            close_stale_room(state.livekit, room_name)
            info = None
        found = squatter(state, info) if info is not None else None
        if found is not None:
            # Not a session: the caller's next start clears it, unless strangers hold it.
            others = [identity for identity in found.people if identity != own.identity]
            if others and found.kind == "not-onboarding":
                raise RoomOccupied(occupied_message(found, len(others)))
            info = None
        if info is None:
            pending = OnboardingRoom(name=room_name, owner=own.identity)
            return SessionStatus(pending, [], started=False)
    room = require_room(state, room_name, caller, "view")
    return SessionStatus(room, list_participants(state.livekit, room.name))


def update_context(
    state: OnboardingState,
    caller: Caller,
    room_name: str,
    context: Mapping[str, Any] | None = None,
    mode: ContextMode = "merge",
    *,
    client: Mapping[str, Any] | None = None,
) -> OnboardingRoom:
    """Change the room's server context and/or its client notes; return the updated room.

    The context is the host's word: only the host, an operator or whom the
    ``room_authorizer`` allows ``update_context`` (staff) may change it, not the room's owner
    by default. The client notes (``client``) are the owner's to write. ``merge`` follows JSON
    merge-patch rules (RFC 7386). The result is written with LiveKit's ``UpdateRoomMetadata``,
    so connected participants and agents see it at once.
    """
    if context is None and client is None:
        raise ValidationFailed("Send context or client to update.", field="context")
    parts = [part for part, value in (("context", context), ("client", client)) if value]
    with state.telemetry.context_update_span(room_name, mode, parts):
        updated, written = _write_context(state, caller, room_name, context, mode, client)
    logger.info(
        "onboarding room %r updated by %r",
        room_name,
        str(caller),
        extra={"room_name": room_name, "session_id": updated.session_id},
    )
    send_contained(
        signals.context_updated,
        state.app,
        room_name=room_name,
        identity=caller.identity,
        context=dict(updated.context),
        client=dict(updated.client),
        session_id=updated.session_id,
    )
    return OnboardingRoom.from_envelope(written, updated)


def _write_context(
    state: OnboardingState,
    caller: Caller,
    room_name: str,
    context: Mapping[str, Any] | None,
    mode: ContextMode,
    client: Mapping[str, Any] | None,
) -> tuple[Envelope, api.Room]:
    """Merge the update into the room's envelope under the room's lock; the signed envelope
    and the room LiveKit confirmed."""
    # Who may act is settled before the lock: a refused caller never holds up the room.
    checked = room_or_404(state, room_name)
    _authorize_update(state, caller, checked, context, client)
    # One update of a room at a time, from the read to the confirmed write: LiveKit has no
    # compare-and-set, so two interleaved merges would silently lose one of them.
    wait, lease = lock_bounds(state.config)
    with state.telemetry.lock_wait(state.locks.hold(room_name, wait=wait, lease=lease)):
        room = room_or_404(state, room_name)
        if room.session_id != checked.session_id:  # a new session (another owner) by now
            _authorize_update(state, caller, room, context, client)
        assert room.envelope is not None
        envelope = room.envelope
        new_context = envelope.context
        if context is not None:
            new_context = (
                dict(context) if mode == "replace" else merge_patch(envelope.context, context)
            )
        new_client = envelope.client if client is None else merge_patch(envelope.client, client)
        blame = "context" if context is not None else "client"
        check_stored_json(new_context, "context", state.config.max_context_depth)
        check_stored_json(new_client, "client", state.config.max_context_depth)
        if client is not None:
            check_client_notes(new_client, state.config.max_client_bytes)
        try:
            updated = state.config.binding.sign(
                room.name, replace(envelope, context=new_context, client=new_client)
            )
        except ValueError:
            raise ValidationFailed(
                f"{blame} must be plain JSON (no NaN or Infinity).", field=blame
            ) from None
        metadata = room_metadata(updated, blame)
        written = update_room_metadata(state.livekit, room.name, metadata)
        with state.telemetry.span("onboarding.confirm"):
            confirm_metadata(state.livekit, room.name, metadata, state.config.request_timeout)
    return updated, written


def _authorize_update(
    state: OnboardingState,
    caller: Caller,
    room: OnboardingRoom,
    context: Mapping[str, Any] | None,
    client: Mapping[str, Any] | None,
) -> None:
    if caller.trusted:
        return
    if context is not None:
        authorize(state.hooks, caller.person, room, "update_context", owner_may=False)
    if client is not None:
        authorize(state.hooks, caller.person, room, "update_client")


def end_session(
    state: OnboardingState, caller: Caller, room_name: str, *, force: bool = False
) -> OnboardingRoom:
    """Close the onboarding room ``room_name``; everyone in it is disconnected.

    The session's agent dispatches are cancelled first, so an agent that has not joined yet
    never arrives (and cannot re-create the room). A room live under an onboarding name
    without a session of this deployment (see :mod:`.claims`) is closed by the user whose
    name it is when nobody else is in it, and by the host or an operator with ``force``;
    otherwise the answer says what it is (409).

    With ``on_join`` a token issued before the end still carries the room configuration until
    its join deadline, so the ended room is replaced by a marker room (no envelope, no agent)
    that holds the name until every such deadline has passed. ``eager`` tokens carry no room
    configuration: a kept token can only open an empty room.
    """
    try:
        room = require_room(state, room_name, caller, "end")
    except RoomNotFound:
        return _end_squatter(state, caller, room_name, force)
    _note_participants(state, room)
    summary = begin_summary(state, room)
    try:
        _cancel_dispatches(state, room.name)
        delete_room(state.livekit, room.name)
    except Exception:
        abandon_summary(state, room, summary)
        raise
    logger.info(
        "onboarding room %r ended by %r",
        room.name,
        str(caller),
        extra={"room_name": room.name, "session_id": room.session_id},
    )
    if state.config.room_creation == "on_join":
        _leave_ended_marker(state, room)
    if state.config.allow_anonymous and state.hooks.identity_loader is None:
        # A demo guest's session ends with the guest: a copy of its cookie starts afresh.
        state.marks.mark(REVOKED_GUEST, room.owner, state.config.guest_ttl)
    send_contained(
        signals.session_ended,
        state.app,
        room_name=room.name,
        identity=caller.identity,
        session_id=room.session_id,
    )
    finish_summary(state.app, state, room, summary)
    return room


def _end_squatter(
    state: OnboardingState, caller: Caller, room_name: str, force: bool
) -> OnboardingRoom:
    """End the room live under ``room_name`` that carries no session of this deployment."""
    found = find_squatter(state, room_name)
    if found is None:
        raise RoomNotFound(f"No onboarding room named {room_name!r}.")
    if found.kind == "ended-marker" and not force:
        # The marker keeps tokens of the ended session out; the owner's next start replaces it.
        raise RoomNotFound(f"The session in {room_name!r} has already ended.")
    own = caller.identity
    if caller.trusted:
        if not force:
            raise RoomOccupied(
                f"The room {room_name!r} is live but holds {found.describe()} "
                f"({len(found.people)} people, {found.agents} agents); end it with force "
                "(flask livekit end --force)."
            )
        clear(state, found, owner=None, force=True)
    elif own is not None and room_name == state.config.binding.room_name_for(own.identity):
        # The name is derived from this user's identity with this deployment's key: whatever
        # is live under it stands in their way, and is theirs to clear.
        clear(state, found, owner=own.identity, force=False)
    else:
        # Possibly another deployment's session under the same prefix: not for staff to end.
        raise RoomNotFound(f"No onboarding room named {room_name!r}.")
    logger.info(
        "room %r (%s) ended by %r",
        room_name,
        found.kind,
        str(caller),
        extra={"room_name": room_name},
    )
    return OnboardingRoom(name=room_name, owner=own.identity if own is not None else "")


def _cancel_dispatches(state: OnboardingState, name: str) -> None:
    """Cancel the room's agent dispatches; the end goes ahead if LiveKit refuses."""
    try:
        cancelled = cancel_dispatches(state.livekit, name)
    except ApiError as error:
        logger.warning("dispatches of %r not cancelled: %s", name, error.error_code)
        return
    if cancelled:
        logger.info("cancelled %d agent dispatch(es) of %r", cancelled, name)


def _note_participants(state: OnboardingState, room: OnboardingRoom) -> None:
    """Remember who is in the room for its summary; the end goes ahead if that fails."""
    try:
        note_participants(state, room, list_participants(state.livekit, room.name))
    except ApiError as error:
        logger.warning("participants of %r not noted: %s", room.name, error.error_code)


def list_sessions(state: OnboardingState) -> list[OnboardingRoom]:
    """Every live onboarding room of this deployment, oldest first."""
    return list_rooms(state.livekit, state.config.binding)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target``."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _leave_ended_marker(state: OnboardingState, room: OnboardingRoom) -> None:
    """Hold ``room``'s name with a closed marker past the join deadline of every token that
    may still carry its room configuration (the session's own, or a later one's)."""
    now = int(time.time())
    join_by = room.envelope.join_by if room.envelope is not None else 0
    # +1: LiveKit compares whole seconds; the marker must outlive the last second that counts.
    hold = max(join_by, now + state.config.token_ttl + JOIN_GRACE) - now + 1
    marker = {ENDED_KEY: {"session_id": room.session_id, "ended_at": now}}
    # Both timeouts: a participant who joins the marker and leaves must not close it early.
    settings = api.RoomConfiguration(
        name=room.name,
        metadata=json.dumps(marker),
        empty_timeout=hold,
        departure_timeout=hold,
    )
    try:
        create_room(state.livekit, settings)
    except ApiError as error:
        # The session is over either way; only a stale token's way back stays open.
        logger.warning(
            "no ended marker for room %r: %s",
            room.name,
            error.error_code,
            extra={"room_name": room.name, "session_id": room.session_id},
        )
        return
    if state.config.session_policy == "resume":
        # The owner's next token request replaces the marker with their new session.
        state.marks.mark(ENDED_ROOM, room.name, hold)
