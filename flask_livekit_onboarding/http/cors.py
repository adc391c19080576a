"""Cross-origin access to the extension's routes, from ``LIVEKIT_ONBOARDING_CORS_ORIGINS``."""

from __future__ import annotations

from flask import Blueprint

from ..config import OnboardingConfig
from ..errors import ConfigurationError

#: What LiveKit's clients and starter frontends send: JSON bodies, the starters' sandbox
#: header (empty outside LiveKit Cloud's sandbox), Flask-WTF's CSRF header, bearer tokens.
ALLOWED_HEADERS = ("Content-Type", "X-Sandbox-Id", "X-CSRFToken", "Authorization")
#: The methods the routes serve.
ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE")
#: Seconds a browser may reuse a preflight answer.
PREFLIGHT_MAX_AGE = 600


def apply_cors(blueprint: Blueprint, config: OnboardingConfig) -> None:
    """Answer preflights and add CORS headers on ``blueprint``'s routes only, for the
    configured origins; nothing else of the host app changes."""
    if not config.cors_origins:
        return
    try:
        from flask_cors import CORS
    except ImportError:
        raise ConfigurationError(
            "LIVEKIT_ONBOARDING_CORS_ORIGINS is set but Flask-CORS is not installed: "
            "pip install 'flask-livekit-onboarding[cors]'"
        ) from None
    CORS(
        blueprint,
        origins=list(config.cors_origins),
        supports_credentials=config.cors_credentials,
        allow_headers=list(ALLOWED_HEADERS),
        methods=list(ALLOWED_METHODS),
        max_age=PREFLIGHT_MAX_AGE,
        vary_header=True,
    )
