"""Per-app state: what ``init_app`` resolved for one Flask app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .config import OnboardingConfig
from .dedupe import WebhookDedupe
from .livekit_bridge import LiveKitBridge

if TYPE_CHECKING:
    from .extension import LiveKitOnboarding

#: The key in ``app.extensions``.
EXTENSION_KEY = "livekit_onboarding"


@dataclass
class OnboardingState:
    """The extension, validated config, LiveKit bridge and webhook de-duplication of one app."""

    extension: LiveKitOnboarding
    config: OnboardingConfig
    bridge: LiveKitBridge
    dedupe: WebhookDedupe

    def close(self) -> None:
        """Release the LiveKit connection and the de-duplication store of this app."""
        self.bridge.close()
        self.dedupe.close()


def get_state(app: Flask | None = None) -> OnboardingState:
    """The state of ``app`` (default: the current app); a clear error before ``init_app``."""
    target = app if app is not None else current_app
    try:
        state: OnboardingState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask-livekit-onboarding is not initialised on this app: "
            "did you forget to call LiveKitOnboarding.init_app(app)?"
        ) from None
    return state
