"""Deciding who a request speaks for: the host's login hook, or a demo guest per browser.

Every access decision uses the caller from :func:`current_caller`. Fields a client sends in
the token request may only become claims of the participant token, and only where the
deployment allows client-chosen identities (:func:`participant_identity`).
"""

from __future__ import annotations

import secrets
import time

from flask import session

from .caller import Caller
from .errors import ConfigurationError, Forbidden, Unauthorized
from .hooks import Identity
from .livekit_limits import check_identity
from .marks import REVOKED_GUEST
from .roles import SERVER_ATTRIBUTES
from .state import OnboardingState
from .token_request import TokenRequest

#: The Flask session key holding a demo guest's identity, so one browser stays one guest.
GUEST_SESSION_KEY = "livekit_onboarding_guest"


def current_caller(state: OnboardingState) -> Caller:
    """Who the current request speaks for: a user, or in demo mode this browser's guest."""
    identity = current_identity(state)
    if state.hooks.identity_loader is None:
        return Caller.guest(identity)
    return Caller.user(identity)


def current_identity(state: OnboardingState) -> Identity:
    """The caller as the host's ``identity_loader`` sees it; 401 when nobody is signed in.

    In demo mode (``LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS`` with no hook) the caller is a guest
    kept in the Flask session cookie, the same one on every request from that browser.
    """
    loader = state.hooks.identity_loader
    if loader is None:
        if state.config.allow_anonymous:
            return _guest(state)
        raise Unauthorized(
            "No identity_loader is registered: decorate a function with "
            "@onboarding.identity_loader, or set LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True "
            "for a demo."
        )
    found = loader()
    if found is None:
        raise Unauthorized()
    if isinstance(found, str):
        found = Identity(identity=found)
    if not isinstance(found, Identity) or not isinstance(found.identity, str) or not found.identity:
        raise ConfigurationError(
            "identity_loader must return an Identity, a non-empty identity string, or None"
        )
    return check_identity(found, "identity_loader")


def participant_identity(
    state: OnboardingState, caller: Identity, request: TokenRequest
) -> Identity:
    """Who the token is minted for: the caller, with client fields only where allowed.

    Without ``LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY`` a client field that differs from
    the server's value is refused (403 naming it), the display name included: a user cannot
    name herself "Support". With it, the client's fields become claims of the token, while
    access, authorization and context still use ``caller``.
    """
    name = caller.name or caller.identity
    reserved = sorted(SERVER_ATTRIBUTES & set(request.participant_attributes or {}))
    if reserved:
        raise Forbidden(
            f"The attribute {reserved[0]!r} is set by the server; no client may choose it.",
            field=f"participant_attributes.{reserved[0]}",
        )
    if state.config.allow_client_identity:
        return Identity(
            identity=request.participant_identity or caller.identity,
            name=request.participant_name or name,
            metadata=request.participant_metadata or caller.metadata,
            attributes=request.participant_attributes or caller.attributes,
        )
    _refuse_if_different(request.participant_identity, caller.identity, "participant_identity")
    _refuse_if_different(request.participant_name, name, "participant_name")
    _refuse_if_different(request.participant_metadata, caller.metadata, "participant_metadata")
    _refuse_if_different(
        request.participant_attributes, dict(caller.attributes), "participant_attributes"
    )
    return Identity(caller.identity, name, caller.metadata, caller.attributes)


def guest_identity(state: OnboardingState) -> Identity:
    """The guest of this browser, kept in the Flask session (created on first use)."""
    return _guest(state)


def _guest(state: OnboardingState) -> Identity:
    """The browser's guest; a new one when it has none, or its own expired or was revoked."""
    now = int(time.time())
    try:
        record = session.get(GUEST_SESSION_KEY)
        guest = record.get("id") if isinstance(record, dict) else None
        since = record.get("since") if isinstance(record, dict) else None
        if (
            not isinstance(guest, str)
            or not guest.startswith("guest-")
            or not isinstance(since, int)
            or not 0 <= now - since < state.config.guest_ttl
            or state.marks.marked(REVOKED_GUEST, guest)
        ):
            guest = f"guest-{secrets.token_hex(8)}"
            session[GUEST_SESSION_KEY] = {"id": guest, "since": now}
    except RuntimeError:
        raise ConfigurationError(
            "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS keeps each guest in the Flask session: "
            "set SECRET_KEY on the app"
        ) from None
    return Identity(identity=guest, name="Guest")


def _refuse_if_different(value: object, expected: object, field: str) -> None:
    if value is not None and value != expected:
        raise Forbidden(
            f"{field} is chosen by the server; this deployment does not let clients set it.",
            field=field,
        )
