"""Live onboarding sessions on LiveKit for any Flask app.

The Flask parts load on first use, so an agent process can import
:mod:`flask_livekit_onboarding.envelope` without importing Flask.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("flask-livekit-onboarding")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from . import signals
    from .dedupe import MemoryDedupe, RedisDedupe, WebhookDedupe
    from .envelope import OnboardingRoom, decode_context
    from .errors import (
        ApiError,
        BadRequest,
        ConfigurationError,
        DedupeUnavailable,
        Forbidden,
        LiveKitError,
        LiveKitTimeout,
        LiveKitUnavailable,
        OnboardingError,
        RoomNotFound,
        Unauthorized,
        ValidationFailed,
    )
    from .extension import LiveKitOnboarding
    from .hooks import Identity, RoomAction
    from .http import create_blueprint
    from .invite_store import Invite, InviteStore, MemoryInviteStore, RedisInviteStore
    from .invites import CreatedInvite
    from .state import OnboardingState

_EXPORTS = {
    "signals": "signals",
    "MemoryDedupe": "dedupe",
    "RedisDedupe": "dedupe",
    "WebhookDedupe": "dedupe",
    "OnboardingRoom": "envelope",
    "decode_context": "envelope",
    "ApiError": "errors",
    "BadRequest": "errors",
    "ConfigurationError": "errors",
    "DedupeUnavailable": "errors",
    "Forbidden": "errors",
    "LiveKitError": "errors",
    "LiveKitTimeout": "errors",
    "LiveKitUnavailable": "errors",
    "OnboardingError": "errors",
    "RoomNotFound": "errors",
    "Unauthorized": "errors",
    "ValidationFailed": "errors",
    "LiveKitOnboarding": "extension",
    "Identity": "hooks",
    "RoomAction": "hooks",
    "Invite": "invite_store",
    "InviteStore": "invite_store",
    "MemoryInviteStore": "invite_store",
    "RedisInviteStore": "invite_store",
    "CreatedInvite": "invites",
    "create_blueprint": "http",
    "OnboardingState": "state",
}

__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigurationError",
    "CreatedInvite",
    "DedupeUnavailable",
    "Forbidden",
    "Identity",
    "Invite",
    "InviteStore",
    "LiveKitError",
    "LiveKitOnboarding",
    "LiveKitTimeout",
    "LiveKitUnavailable",
    "MemoryDedupe",
    "MemoryInviteStore",
    "OnboardingError",
    "OnboardingRoom",
    "OnboardingState",
    "RedisDedupe",
    "RedisInviteStore",
    "RoomAction",
    "RoomNotFound",
    "Unauthorized",
    "ValidationFailed",
    "WebhookDedupe",
    "__version__",
    "create_blueprint",
    "decode_context",
    "signals",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = importlib.import_module(f".{module}", __name__)
    value = loaded if name == module else getattr(loaded, name)
    globals()[name] = value
    return value
