"""Live onboarding sessions on LiveKit for any Flask app."""

from __future__ import annotations

from . import signals
from .blueprint import create_blueprint
from .dedupe import DedupeUnavailable, MemoryDedupe, RedisDedupe, WebhookDedupe
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
    "DedupeUnavailable",
    "Identity",
    "LiveKitError",
    "LiveKitOnboarding",
    "LiveKitTimeout",
    "LiveKitUnavailable",
    "MemoryDedupe",
    "OnboardingError",
    "OnboardingRoom",
    "RedisDedupe",
    "RoomAction",
    "create_blueprint",
    "decode_context",
    "WebhookDedupe",
    "signals",
]
