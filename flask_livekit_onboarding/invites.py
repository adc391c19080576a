"""Invites: codes that let somebody else into one onboarding session.

The room's owner, staff (the ``room_authorizer`` allowing ``"invite"``) or the host create an
invite for a live session; whoever holds its code redeems it at the token endpoint, in the
:data:`INVITE_HEADER` request header, and joins with the invite's role. A code is
``<id>.<secret>``: the id names the invite (it is shown in lists), the 256-bit secret is
shown once and stored only as an HMAC keyed with the deployment's signing key. An invite
admits at most ``max_uses`` different people, until it expires, is revoked, or its session
ends (a later session of the same room name does not count).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import has_request_context, request
from livekit import api

from . import signals
from .access import require_room
from .caller import Caller
from .errors import (
    Forbidden,
    InviteExpired,
    InviteMalformed,
    InviteNotFound,
    InviteRevoked,
    InviteSessionEnded,
    InviteUsedUp,
    InviteWrongRoom,
    RoomNotFound,
    TooManyInvites,
    Unauthorized,
    ValidationFailed,
)
from .hooks import Identity
from .identity import current_identity, guest_identity, participant_identity
from .invite_request import InviteOptions
from .invite_store import Invite, Redemption
from .roles import INVITE_ROLES, ROLE_ATTRIBUTE, InviteRole
from .rooms import find_room, list_participants
from .signals import send_contained
from .state import OnboardingState
from .token_flow import IssuedToken, invitee_token
from .token_request import TokenRequest

logger = logging.getLogger(__name__)

#: The request header carrying an invite's code to the token endpoint.
INVITE_HEADER = "X-Onboarding-Invite"
_ID_BYTES = 9
_SECRET_BYTES = 32
_ID = r"[A-Za-z0-9_-]{12}"
_CODE = re.compile(rf"({_ID})\.([A-Za-z0-9_-]{{43}})")
_INVITE_ID = re.compile(_ID)
_GONE: dict[Redemption, type[Exception]] = {
    "revoked": InviteRevoked,
    "expired": InviteExpired,
    "used_up": InviteUsedUp,
}


@dataclass(frozen=True)
class CreatedInvite:
    """A new invite with its code and link: the only time either is shown."""

    invite: Invite
    code: str = field(repr=False)
    link: str | None = field(default=None, repr=False)

    def response_body(self) -> dict[str, Any]:
        """The invite as listed, plus its ``code`` and ``link``."""
        return {**invite_body(self.invite), "code": self.code, "link": self.link}


def invite_body(invite: Invite) -> dict[str, Any]:
    """What an invite looks like to the owner and staff: never its code."""
    return {
        "id": invite.id,
        "room_name": invite.room_name,
        "role": invite.role,
        "guests": invite.guests,
        "label": invite.label,
        "uses": invite.uses,
        "max_uses": invite.max_uses,
        "expires_at": invite.expires_at,
        "created_at": invite.created_at,
        "created_by": invite.created_by or None,
    }


def create_invite(
    state: OnboardingState,
    caller: Caller,
    room_name: str,
    options: InviteOptions,
    *,
    inviter_name: str | None = None,
) -> CreatedInvite:
    """Invite somebody into the live session of ``room_name`` with ``options`` (checked by
    :func:`~.invite_request.parse_invite_options`).

    422 says the session has ``LIVEKIT_ONBOARDING_MAX_INVITES`` live invites already, or that
    guests need a ``SECRET_KEY``; 404 / 403 as for any room the caller may not invite to.
    """
    config = state.config
    checked_role, uses, lifetime = options.role, options.max_uses, options.ttl or config.invite_ttl
    label, guests = options.label, options.guests
    if guests and not state.app.secret_key:
        raise ValidationFailed(
            "Guests are kept in the Flask session: this app has no SECRET_KEY.", field="guests"
        )
    room = require_room(state, room_name, caller, "invite")
    now = int(time.time())
    invite_id = secrets.token_urlsafe(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    inviter = caller.identity
    if inviter_name is None:
        inviter_name = _shown_name(state, room.name, inviter.identity if inviter else room.owner)
        inviter_name = inviter_name or (inviter.name or inviter.identity if inviter else room.owner)
    invite = Invite(
        id=invite_id,
        room_name=room.name,
        session_id=room.session_id,
        role=checked_role,
        max_uses=uses,
        expires_at=now + lifetime,
        created_at=now,
        created_by=inviter.identity if inviter is not None else "",
        inviter_name=inviter_name,
        label=label,
        guests=guests,
        code_hash=_code_hash(state, invite_id, secret),
    )
    if not state.invites.add(invite, config.max_invites, now):
        raise TooManyInvites(
            f"This session already has {config.max_invites} live invites; revoke one first."
        )
    code = f"{invite_id}.{secret}"
    logger.info("invite %s to room %r created (%s)", invite_id, room.name, checked_role)
    send_contained(
        signals.invite_created,
        state.app,
        room_name=room.name,
        identity=caller.identity,
        invite_id=invite_id,
        role=checked_role,
        max_uses=uses,
        expires_at=invite.expires_at,
    )
    return CreatedInvite(invite, code, invite_link(state, room.name, code))


def list_invites(state: OnboardingState, caller: Caller, room_name: str) -> list[Invite]:
    """The invites of the live session of ``room_name`` that can still admit somebody."""
    room = require_room(state, room_name, caller, "invite")
    return state.invites.for_session(room.session_id, time.time())


def revoke_invite(state: OnboardingState, caller: Caller, room_name: str, invite_id: str) -> Invite:
    """Revoke an invite at once, and disconnect whoever joined the room with it."""
    room = require_room(state, room_name, caller, "invite")
    invite = state.invites.get(invite_id) if _INVITE_ID.fullmatch(invite_id) else None
    if invite is None or invite.room_name != room.name or invite.session_id != room.session_id:
        raise InviteNotFound(f"No invite {invite_id!r} to this session.")
    revoked = state.invites.revoke(invite_id) or invite
    _disconnect_invitees(state, room.name, revoked)
    logger.info("invite %s to room %r revoked", invite_id, room.name)
    send_contained(
        signals.invite_revoked,
        state.app,
        room_name=room.name,
        identity=caller.identity,
        invite_id=invite_id,
    )
    return revoked


def redeem_invite(state: OnboardingState, code: str, token_request: TokenRequest) -> IssuedToken:
    """A token into the invite's session for the caller (a guest where the invite allows it).

    Every refusal takes no use: a malformed code or one this deployment never issued is 404,
    one for another room 403, and an expired, revoked, used-up or ended one 410.
    """
    match = _CODE.fullmatch(code.strip())
    if match is None:
        raise InviteMalformed()
    invite_id, secret = match.groups()
    invite = state.invites.get(invite_id)
    if invite is None or not hmac.compare_digest(
        invite.code_hash, _code_hash(state, invite_id, secret)
    ):
        raise InviteNotFound("No such invite: check the code, or ask for a new one.")
    if token_request.room_name is None:
        raise ValidationFailed("Send the invite's room_name with it.", field="room_name")
    if token_request.room_name != invite.room_name:
        raise InviteWrongRoom()
    if token_request.agents:
        raise ValidationFailed(
            "An invite joins a live session; it cannot dispatch agents.",
            field="room_config.agents",
        )
    now = time.time()
    if invite.revoked:
        raise InviteRevoked()
    if invite.expires_at <= now:
        raise InviteExpired()
    caller = _invitee(state, invite)
    participant = participant_identity(state, caller, token_request)
    room = find_room(state.livekit, invite.room_name, state.config.binding)
    if room is None or room.session_id != invite.session_id:
        raise InviteSessionEnded()
    if caller.identity == room.owner:
        # Joining as an invitee would replace the owner's own connection, with fewer rights.
        raise Forbidden("This is your own session: join it without the invite.")
    verdict, redeemed = state.invites.redeem(invite_id, caller.identity, now)
    if verdict in _GONE:
        raise _GONE[verdict]()
    if verdict == "unknown" or redeemed is None:
        raise InviteExpired()
    role: InviteRole = "viewer" if redeemed.role == "viewer" else "participant"
    issued = invitee_token(state, room, participant, role, invited_by=redeemed.inviter_name)
    logger.info("invite %s admitted %r to room %r", invite_id, caller.identity, room.name)
    send_contained(
        signals.invite_redeemed,
        state.app,
        room_name=room.name,
        identity=participant,
        invite_id=invite_id,
        role=role,
        first_use=verdict == "ok",
    )
    return issued


def invite_link(state: OnboardingState, room_name: str, code: str) -> str | None:
    """The page link of an invite, when ``LIVEKIT_ONBOARDING_INVITE_URL`` is set.

    The room and code travel in the fragment, which browsers send to no server, so the code
    stays out of access logs and ``Referer`` headers.
    """
    base = state.config.invite_url
    if base is None:
        return None
    if base.startswith("/") and has_request_context():
        base = request.host_url.rstrip("/") + base
    return f"{base}#{urlencode({'room': room_name, 'invite': code})}"


def _invitee(state: OnboardingState, invite: Invite) -> Identity:
    """The signed-in caller, or this browser's guest where the invite allows guests.

    Without an ``identity_loader`` (demo mode) every caller is a guest.
    """
    if state.hooks.identity_loader is not None:
        try:
            return current_identity(state)
        except Unauthorized:
            pass
    if not invite.guests:
        raise Unauthorized("Sign in to use this invite: it is not open to guests.")
    guest = guest_identity(state)
    return Identity(guest.identity, name=invite.label or guest.name)


def _shown_name(state: OnboardingState, room_name: str, identity: str) -> str | None:
    """The name ``identity`` has in the room right now (its token's, so the deployment's)."""
    try:
        present = list_participants(state.livekit, room_name)
    except RoomNotFound:
        return None
    return next((p.name for p in present if p.identity == identity and p.name), None)


def _code_hash(state: OnboardingState, invite_id: str, secret: str) -> str:
    message = f"invite\0{invite_id}\0{secret}".encode()
    digest = hmac.new(state.config.signing_key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _disconnect_invitees(state: OnboardingState, room_name: str, invite: Invite) -> None:
    """Remove from the room whoever joined it with ``invite`` (and holds an invited role)."""
    if not invite.redeemed_by:
        return
    try:
        present = list_participants(state.livekit, room_name)
    except Exception:  # noqa: BLE001 - the revocation stands; only the disconnect is skipped
        logger.warning("invitees of invite %s could not be listed for removal", invite.id)
        return
    for participant in present:
        role = participant.attributes.get(ROLE_ATTRIBUTE)
        if participant.identity not in invite.redeemed_by or role not in INVITE_ROLES:
            continue
        try:
            _remove(state, room_name, participant.identity)
        except Exception:  # noqa: BLE001 - already gone, or LiveKit busy: the invite is dead
            logger.warning("an invitee of invite %s could not be removed", invite.id)


def _remove(state: OnboardingState, room_name: str, identity: str) -> None:
    target = api.RoomParticipantIdentity(room=room_name, identity=identity)

    async def remove(lk: api.LiveKitAPI) -> None:
        await lk.room.remove_participant(target)

    state.livekit.call(remove)
