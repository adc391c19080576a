"""Deciding who a request speaks for, from the host's hook or the deployment's settings."""

from __future__ import annotations

import secrets

from .errors import ConfigurationError, Forbidden, Unauthorized
from .hooks import Identity
from .state import OnboardingState
from .token_request import TokenRequest


def current_identity(state: OnboardingState) -> Identity:
    """The caller as the host's ``identity_loader`` sees it; 401 when nobody is signed in."""
    loader = state.hooks.identity_loader
    if loader is None:
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
    if not isinstance(found, Identity) or not found.identity:
        raise ConfigurationError(
            "identity_loader must return an Identity, a non-empty identity string, or None"
        )
    return found


def token_identity(state: OnboardingState, request: TokenRequest) -> Identity:
    """The identity a token is minted for, applying the deployment's rules on client fields.

    The hook speaks for the participant. A client may name itself where the hook gives no
    name; any other client value that differs from the hook's is refused (403) unless
    ``LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY`` is on.
    """
    config = state.config
    if state.hooks.identity_loader is None and config.allow_anonymous:
        base = Identity(identity=f"guest-{secrets.token_hex(8)}", name=None)
        if not config.allow_client_identity:
            _refuse_unless_absent(request.participant_identity, "participant_identity")
            _refuse_unless_absent(request.participant_metadata, "participant_metadata")
            _refuse_unless_absent(request.participant_attributes, "participant_attributes")
            return Identity(base.identity, request.participant_name or "Guest")
    else:
        base = current_identity(state)
    if config.allow_client_identity:
        return Identity(
            identity=request.participant_identity or base.identity,
            name=request.participant_name or base.name,
            metadata=request.participant_metadata or base.metadata,
            attributes=request.participant_attributes or base.attributes,
        )
    _refuse_if_different(request.participant_identity, base.identity, "participant_identity")
    _refuse_if_different(request.participant_metadata, base.metadata, "participant_metadata")
    _refuse_if_different(
        request.participant_attributes, dict(base.attributes), "participant_attributes"
    )
    if base.name is not None:
        _refuse_if_different(request.participant_name, base.name, "participant_name")
    return Identity(
        identity=base.identity,
        name=base.name or request.participant_name or base.identity,
        metadata=base.metadata,
        attributes=base.attributes,
    )


def _refuse_unless_absent(value: object, field: str) -> None:
    if value is not None:
        raise Forbidden(
            f"{field} is chosen by the server; this deployment does not let clients set it.",
            field=field,
        )


def _refuse_if_different(value: object, expected: object, field: str) -> None:
    if value is not None and value != expected:
        _refuse_unless_absent(value, field)
