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

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load lazily
    from . import signals as signals
    from .dedupe import MemoryDedupe as MemoryDedupe
    from .dedupe import RedisDedupe as RedisDedupe
    from .dedupe import WebhookDedupe as WebhookDedupe
    from .envelope import OnboardingRoom as OnboardingRoom
    from .envelope import decode_context as decode_context
    from .errors import ApiError as ApiError
    from .errors import BadRequest as BadRequest
    from .errors import ConfigurationError as ConfigurationError
    from .errors import DedupeUnavailable as DedupeUnavailable
    from .errors import Forbidden as Forbidden
    from .errors import LiveKitError as LiveKitError
    from .errors import LiveKitTimeout as LiveKitTimeout
    from .errors import LiveKitUnavailable as LiveKitUnavailable
    from .errors import OnboardingError as OnboardingError
    from .errors import RoomNotFound as RoomNotFound
    from .errors import Unauthorized as Unauthorized
    from .errors import ValidationFailed as ValidationFailed
    from .extension import LiveKitOnboarding as LiveKitOnboarding
    from .hooks import Identity as Identity
    from .hooks import RoomAction as RoomAction
    from .http import create_blueprint as create_blueprint
    from .invite_store import Invite as Invite
    from .invite_store import InviteStore as InviteStore
    from .invite_store import MemoryInviteStore as MemoryInviteStore
    from .invite_store import RedisInviteStore as RedisInviteStore
    from .invites import CreatedInvite as CreatedInvite
    from .state import OnboardingState as OnboardingState
    from .summaries import SessionSummary as SessionSummary

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
    "SessionSummary": "summaries",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = importlib.import_module(f".{module}", __name__)
    value = loaded if name == module else getattr(loaded, name)
    globals()[name] = value
    return value
