"""Per-app state: what ``init_app`` resolved for one Flask app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from .config import OnboardingConfig
from .dedupe import WebhookDedupe
from .hooks import Hooks
from .livekit_bridge import LiveKitClient
from .locks import RoomLocks, make_room_locks

#: The key in ``app.extensions``.
EXTENSION_KEY = "livekit_onboarding"


@dataclass
class OnboardingState:
    """The validated config, host hooks, LiveKit client and webhook de-duplication of one app."""

    config: OnboardingConfig
    hooks: Hooks
    livekit: LiveKitClient
    dedupe: WebhookDedupe
    #: Per-room locks of context updates; by default chosen like the de-duplication store.
    locks: RoomLocks = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.locks is None:
            self.locks = make_room_locks(self.config)

    def close(self) -> None:
        """Release the LiveKit connection, the de-duplication store and locks of this app."""
        self.livekit.close()
        self.dedupe.close()
        self.locks.close()


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
