"""The onboarding use cases: start or resume with a token, view, update the context, end.

The HTTP views and the CLI call these with the app's state and the caller's identity, so each
rule (access, limits, room settings, signals) lives here once. ``caller`` None stands for the
host itself (its own code, or the operator at the command line), who may act on any
onboarding room of this deployment.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from flask import Flask, current_app
from livekit import api

from . import signals
from .access import authorize, require_room, resign_if_rotated
from .claims import ENDED_KEY, claim, clear, find_squatter, occupied_message, squatter
from .config import MAX_METADATA_BYTES
from .envelope import Envelope, OnboardingRoom, job_metadata
from .errors import (
    ApiError,
    ConfigurationError,
    Forbidden,
    RoomNotFound,
    RoomOccupied,
    ValidationFailed,
)
from .hooks import Identity
from .livekit_limits import check_client_notes, check_participant_token, check_stored_json
from .locks import confirm_metadata, lock_bounds
from .marks import ENDED_ROOM, REVOKED_GUEST
from .roles import Role
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
from .telemetry import context_update_span, token_span
from .token_request import AgentRequest
from .tokens import JOIN_GRACE, mint_participant_token

logger = logging.getLogger(__name__)

#: How a context update combines with the room's current context.
ContextMode = Literal["merge", "replace"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("merge", "replace")


@dataclass(frozen=True)
class IssuedToken:
    """A participant token and what a client needs with it."""

    server_url: str
    participant_token: str = field(repr=False)
    room_name: str
    participant_name: str
    expires_in: int
    #: True: the caller's live session was resumed; False: a new room was started; None:
    #: ``on_join`` mode, where LiveKit decides at the join (the room's own session tells).
    resumed: bool | None = None

    def response_body(self) -> dict[str, Any]:
        """LiveKit's standardized token response, plus ``resumed``.

        The two fields every client needs come in both casings: LiveKit's Swift and Unity
        SDKs read only snake_case, its web starters only camelCase.
        """
        return {
            "server_url": self.server_url,
            "participant_token": self.participant_token,
            "serverUrl": self.server_url,
            "participantToken": self.participant_token,
            "room_name": self.room_name,
            "participant_name": self.participant_name,
            "resumed": self.resumed,
        }


@dataclass(frozen=True)
class SessionStatus:
    """An onboarding room and who is in it; ``started`` False for an ``on_join`` room that
    nobody has joined yet (its token is out, LiveKit creates it at the first join)."""

    room: OnboardingRoom
    participants: list[api.ParticipantInfo]
    started: bool = True


@token_span
def issue_token(
    state: OnboardingState,
    caller: Identity,
    *,
    participant: Identity | None = None,
    room_name: str | None = None,
    agents: Iterable[AgentRequest] = (),
    context: Mapping[str, Any] | None = None,
    ttl: int | None = None,
    as_operator: bool = False,
) -> IssuedToken:
    """Start or resume ``caller``'s onboarding session (or join ``room_name``); mint a token.

    Access and context use ``caller`` only; ``participant`` (default: the caller) is who the
    token names. ``context`` replaces the host's ``context_provider`` for a new room;
    ``as_operator`` skips the access check for a named room (the CLI).
    """
    participant = participant or caller
    agents = tuple(agents)
    expires_in = ttl or state.config.token_ttl
    role: Role = "owner"

    def mint(settings: api.RoomConfiguration, room_config: bool = False) -> str:
        # Only an on_join token that starts a session carries the room configuration: LiveKit
        # copies it into every refresh token, so it must never outlive its join deadline.
        carried = settings if room_config else None
        return _participant_token(
            state, participant, settings.name, role, expires_in, room_config=carried
        )

    resumed: bool | None
    if room_name is not None:
        if agents:
            raise ValidationFailed(
                "room_config.agents applies to new rooms only; omit room_name to start one.",
                field="room_config.agents",
            )
        room = require_room(state, room_name, None if as_operator else caller, "join")
        assert room.envelope is not None
        role = "owner" if room.owner == caller.identity else "staff"
        settings = api.RoomConfiguration(name=room.name)
        token, resumed = mint(settings), True
    else:
        on_join = state.config.room_creation == "on_join"
        join_by = int(time.time()) + expires_in + JOIN_GRACE if on_join else 0
        settings, envelope = _new_session(state, caller, agents, context, join_by)
        # Minted before anything is created: a token over the size bound creates no room.
        token, resumed = mint(settings, room_config=on_join), None
        if not on_join:
            live = _create_or_resume(state, caller, settings, envelope)
            resumed = live is not None
            if live is not None:
                settings = live
                token = mint(settings)
        elif state.config.session_policy == "new":
            _announce_new_room(state, settings.name, caller, envelope)
        elif state.marks.marked(ENDED_ROOM, settings.name):
            _replace_ended_marker(state, caller, settings, envelope)
            resumed = False
    return _issued(state, participant, settings.name, role, token, expires_in, resumed)


def issue_invitee_token(
    state: OnboardingState,
    room: OnboardingRoom,
    participant: Identity,
    role: Role,
    *,
    invited_by: str,
) -> IssuedToken:
    """A token for an invitee into ``room``, whose invite has already been redeemed.

    The token carries no room configuration: should the session end before the join, it
    joins no onboarding room and never brings the session back.
    """
    expires_in = state.config.token_ttl
    token = _participant_token(
        state, participant, room.name, role, expires_in, invited_by=invited_by
    )
    return _issued(state, participant, room.name, role, token, expires_in, True)


def _issued(
    state: OnboardingState,
    participant: Identity,
    room_name: str,
    role: Role,
    token: str,
    expires_in: int,
    resumed: bool | None,
) -> IssuedToken:
    """Announce a token minted for ``participant`` (``token_issued``) and hand it out."""
    name = participant.name or participant.identity
    send_contained(
        signals.token_issued,
        _app(),
        room_name=room_name,
        identity=participant,
        participant_name=name,
        expires_in=expires_in,
        role=role,
    )
    return IssuedToken(state.config.public_url, token, room_name, name, expires_in, resumed)


def _participant_token(
    state: OnboardingState,
    participant: Identity,
    room_name: str,
    role: Role,
    ttl: int,
    *,
    room_config: api.RoomConfiguration | None = None,
    invited_by: str | None = None,
) -> str:
    """``participant``'s token for ``room_name`` as ``role``, within the token size bound."""
    token = mint_participant_token(
        state.config,
        room_name=room_name,
        identity=participant.identity,
        name=participant.name or participant.identity,
        metadata=participant.metadata,
        attributes=participant.attributes,
        room_config=room_config,
        ttl=ttl,
        role=role,
        invited_by=invited_by,
    )
    return check_participant_token(token, state.config, participant, room_config)


def session_status(state: OnboardingState, caller: Identity, room_name: str) -> SessionStatus:
    """The onboarding room ``room_name`` and its participants, if ``caller`` may view it.

    The caller's own ``on_join`` room that nobody has joined yet is reported as not started,
    as is whatever their next start replaces (an ended session's marker, an empty room); a
    room under their name that strangers hold answers 409 saying what it is.
    """
    binding = state.config.binding
    if room_name == binding.room_name_for(caller.identity):
        info = live_room(state.livekit, room_name)
        if info is not None and binding.stale(info):
            close_stale_room(state.livekit, room_name)
            info = None
        found = squatter(state, info) if info is not None else None
        if found is not None:
            # Not a session: the caller's next start clears it, unless strangers hold it.
            others = [identity for identity in found.people if identity != caller.identity]
            if others and found.kind == "not-onboarding":
                raise RoomOccupied(occupied_message(found, len(others)))
            info = None
        if info is None:
            pending = OnboardingRoom(name=room_name, owner=caller.identity)
            return SessionStatus(pending, [], started=False)
    room = require_room(state, room_name, caller, "view")
    return SessionStatus(room, list_participants(state.livekit, room.name))


@context_update_span
def update_context(
    state: OnboardingState,
    caller: Identity | None,
    room_name: str,
    context: Mapping[str, Any] | None = None,
    mode: ContextMode = "merge",
    *,
    client: Mapping[str, Any] | None = None,
) -> OnboardingRoom:
    """Change the room's server context and/or its client notes; return the updated room.

    The context is the host's word: only the host (``caller`` None) or whom the
    ``room_authorizer`` allows ``update_context`` (staff) may change it, not the room's owner
    by default. The client notes (``client``) are the owner's to write. ``merge`` follows JSON
    merge-patch rules (RFC 7386). The result is written with LiveKit's ``UpdateRoomMetadata``,
    so connected participants and agents see it at once.
    """
    if context is None and client is None:
        raise ValidationFailed("Send context or client to update.", field="context")
    # Who may act is settled before the lock: a refused caller never holds up the room.
    checked = require_room(state, room_name, None, "update_context", resign=False)
    _authorize_update(state, caller, checked, context, client)
    # One update of a room at a time, from the read to the confirmed write: LiveKit has no
    # compare-and-set, so two interleaved merges would silently lose one of them.
    wait, lease = lock_bounds(state.config)
    with state.telemetry.lock_wait(state.locks.hold(room_name, wait=wait, lease=lease)):
        room = require_room(state, room_name, None, "update_context", resign=False)
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
        metadata = _metadata(updated, blame)
        written = update_room_metadata(state.livekit, room.name, metadata)
        with state.telemetry.span("onboarding.confirm"):
            confirm_metadata(state.livekit, room.name, metadata, state.config.request_timeout)
    who = caller.identity if caller is not None else "the host"
    logger.info(
        "onboarding room %r updated by %r",
        room.name,
        who,
        extra={"room_name": room.name, "session_id": updated.session_id},
    )
    result = OnboardingRoom.from_envelope(written, updated)
    send_contained(
        signals.context_updated,
        _app(),
        room_name=room.name,
        identity=caller,
        context=dict(updated.context),
        client=dict(updated.client),
        session_id=updated.session_id,
    )
    return result


def _authorize_update(
    state: OnboardingState,
    caller: Identity | None,
    room: OnboardingRoom,
    context: Mapping[str, Any] | None,
    client: Mapping[str, Any] | None,
) -> None:
    if caller is None:
        return
    if context is not None:
        authorize(state.hooks, caller, room, "update_context", owner_may=False)
    if client is not None:
        authorize(state.hooks, caller, room, "update_client")


def end_session(
    state: OnboardingState, caller: Identity | None, room_name: str, *, force: bool = False
) -> OnboardingRoom:
    """Close the onboarding room ``room_name``; everyone in it is disconnected.

    The session's agent dispatches are cancelled first, so an agent that has not joined yet
    never arrives (and cannot re-create the room). A room live under an onboarding name
    without a session of this deployment (see :mod:`.claims`) is closed by the user whose
    name it is when nobody else is in it, and by the host (``caller`` None) with ``force``;
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
    ended_by = caller.identity if caller is not None else "the host"
    logger.info(
        "onboarding room %r ended by %r",
        room.name,
        ended_by,
        extra={"room_name": room.name, "session_id": room.session_id},
    )
    if state.config.room_creation == "on_join":
        _leave_ended_marker(state, room)
    if state.config.allow_anonymous and state.hooks.identity_loader is None:
        # A demo guest's session ends with the guest: a copy of its cookie starts afresh.
        state.marks.mark(REVOKED_GUEST, room.owner, state.config.guest_ttl)
    send_contained(
        signals.session_ended,
        _app(),
        room_name=room.name,
        identity=caller,
        session_id=room.session_id,
    )
    finish_summary(_app(), state, room, summary)
    return room


def _end_squatter(
    state: OnboardingState, caller: Identity | None, room_name: str, force: bool
) -> OnboardingRoom:
    """End the room live under ``room_name`` that carries no session of this deployment."""
    found = find_squatter(state, room_name)
    if found is None:
        raise RoomNotFound(f"No onboarding room named {room_name!r}.")
    if found.kind == "ended-marker" and not force:
        # The marker keeps tokens of the ended session out; the owner's next start replaces it.
        raise RoomNotFound(f"The session in {room_name!r} has already ended.")
    if caller is None:
        if not force:
            raise RoomOccupied(
                f"The room {room_name!r} is live but holds {found.describe()} "
                f"({len(found.people)} people, {found.agents} agents); end it with force "
                "(flask livekit end --force)."
            )
        clear(state, found, owner=None, force=True)
    elif room_name == state.config.binding.room_name_for(caller.identity):
        # The name is derived from this user's identity with this deployment's key: whatever
        # is live under it stands in their way, and is theirs to clear.
        clear(state, found, owner=caller.identity, force=False)
    else:
        # Possibly another deployment's session under the same prefix: not for staff to end.
        raise RoomNotFound(f"No onboarding room named {room_name!r}.")
    logger.info(
        "room %r (%s) ended by %r",
        room_name,
        found.kind,
        caller.identity if caller is not None else "the host",
        extra={"room_name": room_name},
    )
    return OnboardingRoom(name=room_name, owner=caller.identity if caller is not None else "")


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


def _new_session(
    state: OnboardingState,
    caller: Identity,
    agents: tuple[AgentRequest, ...],
    context: Mapping[str, Any] | None,
    join_by: int = 0,
) -> tuple[api.RoomConfiguration, Envelope]:
    """The room settings and envelope of a new session of ``caller``; nothing is called yet.

    With the ``resume`` policy the room name is derived from the caller's identity, so a
    reload, a second tab or a lost room name lands in the live room: ``eager`` creation is
    idempotent (LiveKit's CreateRoom returns a live room unchanged, without a second
    dispatch), and ``on_join`` needs no call (LiveKit applies a token's room config only when
    the room is not live).
    """
    config = state.config
    binding = config.binding
    if context is None:
        provider = state.hooks.context_provider
        context = dict(provider(caller)) if provider is not None else {}
        check_stored_json(context, "context", config.max_context_depth, hook="context_provider")
    if config.session_policy == "resume":
        name = _rotated_room(state, caller) or binding.room_name_for(caller.identity)
    else:
        name = config.room_prefix + secrets.token_urlsafe(16)
    fresh = replace(Envelope.new(caller.identity, context, int(time.time())), join_by=join_by)
    envelope = binding.sign(name, fresh)
    return _room_settings(state, name, envelope, _dispatched_agents(state, agents)), envelope


def _rotated_room(state: OnboardingState, caller: Identity) -> str | None:
    """During a signing-key rotation's overlap: the caller's live room named with a previous
    key, so the rotation opens no second room (one LiveKit call, only during the overlap)."""
    binding = state.config.binding
    names = [binding.room_name_for(caller.identity, key) for key in binding.accepted()]
    if not names:
        return None
    response = state.livekit.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest(names=names)))
    return next((room.name for room in response.rooms if binding.read(room) is not None), None)


def _create_or_resume(
    state: OnboardingState, caller: Identity, settings: api.RoomConfiguration, envelope: Envelope
) -> api.RoomConfiguration | None:
    """Create the room (``eager``); the live session's settings if one was resumed instead.

    A room already live under this generated name without a live session of this deployment
    (an empty room a late agent or a kept token's join created, or a stale one) is closed and
    made anew; one that holds other people is reported (409).
    """
    name = settings.name
    live = state.config.binding.read(claim(state, settings, caller.identity))
    if live is None or live.envelope is None:  # pragma: no cover - claim returns ours
        raise RoomOccupied(f"The room {name!r} is not an onboarding room of this deployment.")
    if live.session_id == envelope.session_id:
        _announce_new_room(state, name, caller, envelope)
        return None
    resign_if_rotated(state, live)
    logger.info(
        "onboarding room %r resumed for %r",
        name,
        caller.identity,
        extra={"room_name": name, "session_id": live.session_id},
    )
    send_contained(
        signals.session_resumed,
        _app(),
        room_name=name,
        identity=caller,
        session_id=live.session_id,
        room_sid=live.sid,
    )
    return api.RoomConfiguration(name=name)


def _replace_ended_marker(
    state: OnboardingState, caller: Identity, settings: api.RoomConfiguration, envelope: Envelope
) -> None:
    """Open the caller's new ``on_join`` session in place of the marker their ended one left:
    created now (as ``eager`` does), so no token kept from before the end can take the name."""
    claim(state, settings, caller.identity)
    state.marks.clear(ENDED_ROOM, settings.name)
    _announce_new_room(state, settings.name, caller, envelope)


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


def _announce_new_room(
    state: OnboardingState, name: str, caller: Identity, envelope: Envelope
) -> None:
    logger.info(
        "onboarding room %r created for %r",
        name,
        caller.identity,
        extra={"room_name": name, "session_id": envelope.session_id},
    )
    send_contained(
        signals.room_created,
        _app(),
        room_name=name,
        identity=caller,
        context=dict(envelope.context),
        mode=state.config.room_creation,
        session_id=envelope.session_id,
    )


def _room_settings(
    state: OnboardingState, name: str, envelope: Envelope, agents: list[AgentRequest]
) -> api.RoomConfiguration:
    """The LiveKit settings of an onboarding room: metadata, timeouts, agent dispatches.

    Every dispatch carries the envelope as job metadata: the room metadata itself, unless a
    client's own agent metadata or the request's trace context travels beside it.
    """
    config = state.config
    metadata = _metadata(envelope, None)
    # The token request's trace travels with the dispatch, so the agent's job continues it.
    trace = state.telemetry.trace_context()
    return api.RoomConfiguration(
        name=name,
        metadata=metadata,
        empty_timeout=config.empty_timeout,
        departure_timeout=config.departure_timeout,
        max_participants=config.max_participants,
        agents=[
            api.RoomAgentDispatch(
                agent_name=agent.agent_name,
                metadata=(
                    job_metadata(envelope, agent.metadata, trace)
                    if agent.metadata or trace
                    else metadata
                ),
                deployment=agent.deployment,
            )
            for agent in agents
        ],
    )


def _metadata(envelope: Envelope, field_name: str | None) -> str:
    """The envelope as room metadata, refusing what LiveKit could not store.

    ``field_name`` names the request field to blame (422); None blames the host's
    ``context_provider`` (a configuration error).
    """
    try:
        metadata = envelope.to_metadata()
        size = len(metadata.encode())
    except (TypeError, ValueError) as error:
        if field_name is None:
            raise ConfigurationError(
                f"context_provider returned a non-JSON value: {error}"
            ) from None
        raise ValidationFailed(
            f"{field_name} must be plain JSON (no NaN or Infinity).", field=field_name
        ) from None
    if size > MAX_METADATA_BYTES:
        if field_name is None:
            raise ConfigurationError("context_provider returned a context larger than 64 KiB")
        raise ValidationFailed(
            f"{field_name} makes the room metadata larger than LiveKit's 64 KiB.", field=field_name
        )
    return metadata


def _dispatched_agents(
    state: OnboardingState, requested: tuple[AgentRequest, ...]
) -> list[AgentRequest]:
    """The configured agent plus the agents a client asked for, if the deployment allows them.

    Every dispatch carries the server's envelope as job metadata; a client's own agent
    metadata travels beside it, marked as the client's, only where the deployment allows it.
    """
    config = state.config
    agents = [AgentRequest(config.agent_name)] if config.agent_name else []
    for index, agent in enumerate(requested):
        where = f"room_config.agents[{index}]"
        if agent.agent_name not in config.agent_names:
            raise Forbidden(
                f"Agent {agent.agent_name!r} may not be dispatched: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENTS.",
                field=f"{where}.agent_name",
            )
        if agent.deployment and agent.deployment not in config.allowed_agent_deployments:
            raise Forbidden(
                f"Agent deployment {agent.deployment!r} may not be requested: add it to "
                "LIVEKIT_ONBOARDING_ALLOWED_AGENT_DEPLOYMENTS.",
                field=f"{where}.deployment",
            )
        if agent.metadata and not config.allow_client_agent_metadata:
            raise Forbidden(
                "Agents get their data from the server; this deployment does not let clients "
                "add agent metadata (LIVEKIT_ONBOARDING_ALLOW_CLIENT_AGENT_METADATA).",
                field=f"{where}.metadata",
            )
        agents = [a for a in agents if a.agent_name != agent.agent_name] + [agent]
    return agents


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined, no-any-return]
