"""The Flask extension object: hook decorators and ``init_app``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from flask import Flask

from . import invites, sessions
from .caller import Caller
from .cli import livekit_cli
from .config import DEFAULTS, REQUIRED, OnboardingConfig, load_config
from .csrf import CSRFProtector
from .dedupe import WebhookDedupe
from .errors import ConfigurationError
from .health import Health, check_health
from .hooks import ContextProvider, Hooks, IdentityLoader, RoomAuthorizer
from .http import create_blueprint
from .http.cors import apply_cors
from .invite_request import parse_invite_options
from .invite_store import Invite, InviteStore
from .invites import CreatedInvite
from .livekit_bridge import LiveKitBridge, LiveKitClient
from .locks import RoomLocks
from .marks import REVOKED_GUEST
from .sessions import ContextMode
from .state import EXTENSION_KEY, OnboardingState, get_state
from .telemetry import Telemetry
from .token_flow import token_flow_for

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=IdentityLoader)
C = TypeVar("C", bound=ContextProvider)
A = TypeVar("A", bound=RoomAuthorizer)


class LiveKitOnboarding:
    """Live onboarding sessions on LiveKit for a Flask app.

    Create it once, register hooks with its decorators, and call :meth:`init_app` in the app
    factory. One object serves any number of apps, each with its own config.
    """

    def __init__(self, app: Flask | None = None, *, blueprint_name: str = "livekit_onboarding"):
        self.blueprint_name = blueprint_name
        self.hooks = Hooks()
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<LiveKitOnboarding blueprint={self.blueprint_name!r}>"

    def init_app(
        self,
        app: Flask,
        *,
        register_blueprint: bool = True,
        dedupe_store: WebhookDedupe | None = None,
        livekit: LiveKitClient | None = None,
        csrf: CSRFProtector | None = None,
        telemetry: Telemetry | None = None,
        invite_store: InviteStore | None = None,
        room_locks: RoomLocks | None = None,
    ) -> None:
        """Validate ``app.config``, set up this app's LiveKit client and mount the routes.

        With ``register_blueprint=False`` mount :func:`create_blueprint` yourself (and apply
        CORS to it yourself: ``LIVEKIT_ONBOARDING_CORS_ORIGINS`` covers the mounted routes).
        ``dedupe_store`` replaces the webhook de-duplication store the config selects (in
        process, or Redis with ``LIVEKIT_ONBOARDING_REDIS_URL``); ``livekit`` replaces the
        LiveKit client (for tests: :class:`flask_livekit_onboarding.testing.FakeLiveKit`).
        The app's state closes both.

        ``csrf`` is the app's Flask-WTF ``CSRFProtect`` (found by itself when it was set up on
        the app first): the extension's routes then check the CSRF token where a browser's
        cookies could carry a forged request, and never on the webhook (signed by LiveKit).
        ``telemetry`` chooses the OpenTelemetry providers
        (default: the global ones) and whether identities are recorded.
        ``invite_store`` and ``room_locks`` (the per-room locks of context updates) replace
        the stores chosen like the de-duplication store. With ``LIVEKIT_ONBOARDING_REDIS_URL``
        the stores the config chooses share one Redis client.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-livekit-onboarding is already initialised on this app; "
                "call init_app once per app."
            )
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        config = load_config(app.config)
        if config.allow_anonymous and not app.secret_key:
            raise ConfigurationError(
                "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS keeps each guest in the Flask session: "
                "set SECRET_KEY before init_app"
            )
        blueprint = create_blueprint(self.blueprint_name) if register_blueprint else None
        if blueprint is not None:
            apply_cors(blueprint, config)  # before anything is set up: it may refuse the config
        telemetry = telemetry if telemetry is not None else Telemetry()
        if config.signing_key_derived:
            logger.warning(
                "LIVEKIT_ONBOARDING_SIGNING_KEY is not set: rooms are signed with a key derived "
                "from the API secret, which every deployment on this LiveKit key pair shares, "
                "so they can read, resume and end each other's sessions. Set a key of its own "
                "for each deployment (with LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS=default "
                "for the overlap)."
            )
        app.extensions[EXTENSION_KEY] = OnboardingState(
            app=app,
            config=config,
            hooks=self.hooks,
            livekit=livekit if livekit is not None else _default_client(config, telemetry),
            token_flow=token_flow_for(config),
            dedupe=dedupe_store,  # type: ignore[arg-type]  # None: chosen from the config
            locks=room_locks,  # type: ignore[arg-type]
            csrf=csrf if csrf is not None else app.extensions.get("csrf"),
            invites=invite_store,  # type: ignore[arg-type]  # None: chosen from the config
            config_snapshot={key: app.config.get(key) for key in (*REQUIRED, *DEFAULTS)},
            telemetry=telemetry,
        )
        app.cli.add_command(livekit_cli)
        if blueprint is not None:
            app.register_blueprint(blueprint, url_prefix=config.url_prefix or None)

    def state(self, app: Flask | None = None) -> OnboardingState:
        """The per-app state of ``app`` (default: the current app)."""
        return get_state(app)

    def revoke_guest(self, identity: str, app: Flask | None = None) -> None:
        """Stop honouring the demo guest ``identity`` (and any copy of its cookie) at once;
        its browser gets a new guest on its next request."""
        state = get_state(app)
        state.marks.mark(REVOKED_GUEST, identity, state.config.guest_ttl)

    def update_context(
        self,
        room_name: str,
        context: Mapping[str, Any],
        mode: ContextMode = "merge",
        *,
        app: Flask | None = None,
    ) -> dict[str, Any]:
        """Change a live session's context as the host (the server's word, no access check).

        For the host's own code, e.g. when the user finishes a step elsewhere in the app;
        participants and agents see the change at once. Returns the new context.
        """
        room = sessions.update_context(get_state(app), Caller.host(), room_name, context, mode)
        return dict(room.context)

    def end_session(self, room_name: str, *, force: bool = False, app: Flask | None = None) -> None:
        """End a live session as the host: cancel its agent dispatches, close the room and
        disconnect everyone (no access check).

        ``force`` also closes a room under the onboarding prefix that carries no session of
        this deployment (as ``flask livekit end --force`` does); without it such a room raises
        a 409 ``room_occupied`` that says what it is. A room that is not live raises 404.
        """
        sessions.end_session(get_state(app), Caller.host(), room_name, force=force)

    def health(self, app: Flask | None = None, timeout: float | None = None) -> Health:
        """Whether LiveKit (and Redis, where configured) answer, within ``timeout`` seconds
        (default: ``LIVEKIT_ONBOARDING_REQUEST_TIMEOUT``); for readiness probes."""
        return check_health(get_state(app), timeout)

    def create_invite(
        self,
        room_name: str,
        *,
        role: str = "participant",
        ttl: int | None = None,
        max_uses: int = 1,
        label: str = "",
        guests: bool = False,
        inviter_name: str | None = None,
        app: Flask | None = None,
    ) -> CreatedInvite:
        """Invite somebody into the live session of ``room_name`` as the host (no access check).

        ``inviter_name`` is who invitees are told invited them (default: the room's owner).
        The result's ``code`` (and ``link``) are shown only now; send the code in the
        ``X-Onboarding-Invite`` header of the token request.
        """
        state = get_state(app)
        options = {"role": role, "ttl": ttl, "max_uses": max_uses, "label": label, "guests": guests}
        checked = parse_invite_options(options, state.config.invite_max_ttl)
        return invites.create_invite(
            state, Caller.host(), room_name, checked, inviter_name=inviter_name
        )

    def list_invites(self, room_name: str, *, app: Flask | None = None) -> list[Invite]:
        """The invites of the live session of ``room_name`` that can still admit somebody."""
        return invites.list_invites(get_state(app), Caller.host(), room_name)

    def revoke_invite(self, room_name: str, invite_id: str, *, app: Flask | None = None) -> None:
        """Revoke an invite at once and disconnect whoever joined with it."""
        invites.revoke_invite(get_state(app), Caller.host(), room_name, invite_id)

    def identity_loader(self, function: F) -> F:
        """Register the function telling who the current request's user is."""
        self.hooks.identity_loader = function
        return function

    def context_provider(self, function: C) -> C:
        """Register the function giving a new room's onboarding context."""
        self.hooks.context_provider = function
        return function

    def room_authorizer(self, function: A) -> A:
        """Register the function deciding access to onboarding rooms the caller does not own."""
        self.hooks.room_authorizer = function
        return function


def _default_client(config: OnboardingConfig, telemetry: Telemetry) -> LiveKitClient:
    return LiveKitBridge(config, telemetry)
