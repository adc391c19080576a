"""Helpers for testing a host app that uses flask-livekit-onboarding.

A real LiveKit server for integration tests comes from :mod:`flask_livekit_onboarding.devserver`;
its public names are re-exported here so ``from flask_livekit_onboarding.testing import
LiveKitDevServer`` keeps working.
"""

from __future__ import annotations

from .devserver import (
    LIVEKIT_SERVER_VERSION,
    LiveKitDevServer,
    LiveKitServerError,
    ensure_livekit_server,
    free_port,
)

__all__ = [
    "LIVEKIT_SERVER_VERSION",
    "LiveKitDevServer",
    "LiveKitServerError",
    "ensure_livekit_server",
    "free_port",
]
