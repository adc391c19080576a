"""Live onboarding sessions on LiveKit for any Flask app."""

from __future__ import annotations

from . import signals
from .blueprint import create_blueprint
from .errors import (
    ApiError,
    ConfigurationError,
    LiveKitError,
    LiveKitTimeout,
    LiveKitUnavailable,
    OnboardingError,
)
from .extension import LiveKitOnboarding
from .hooks import Identity, RoomAction
from .room_metadata import OnboardingRoom, decode_context

__all__ = [
    "ApiError",
    "ConfigurationError",
    "Identity",
    "LiveKitError",
    "LiveKitOnboarding",
    "LiveKitTimeout",
    "LiveKitUnavailable",
    "OnboardingError",
    "OnboardingRoom",
    "RoomAction",
    "create_blueprint",
    "decode_context",
    "signals",
]
