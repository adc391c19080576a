"""Per-app state: what ``init_app`` resolved for one Flask app."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .config import ConfigurationWarning, OnboardingConfig
from .csrf import CSRFProtector
from .dedupe import WebhookDedupe, make_dedupe_store
from .hooks import Hooks
from .invite_store import InviteStore, make_invite_store
from .ledger import SessionLedger, make_ledger
from .livekit_bridge import LiveKitClient
from .locks import RoomLocks, make_room_locks
from .marks import Marks
from .redis_support import connect_redis
from .room_directory import RoomDirectory, make_room_directory
from .telemetry import Telemetry

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

#: The key in ``app.extensions``.
EXTENSION_KEY = "livekit_onboarding"


@dataclass
class OnboardingState:
    """The validated config, host hooks, LiveKit client, stores and token flow of one app."""

    #: The app this state belongs to: the sender of every signal about its sessions.
    app: Flask = field(repr=False)
    config: OnboardingConfig
    hooks: Hooks
    livekit: LiveKitClient
    #: The token request's rules (room creation, session policy) that ``init_app`` chose: a
    #: :class:`~flask_livekit_onboarding.token_flow.TokenFlow`, which imports this module.
    token_flow: Any = field(repr=False)
    #: Webhook event ids already delivered; by default chosen from the config.
    dedupe: WebhookDedupe = field(default=None)  # type: ignore[assignment]
    #: Onboarding rooms seen in webhooks, for events that do not carry the room.
    rooms: RoomDirectory = field(default=None)  # type: ignore[assignment]
    #: Per-room locks of context updates; by default chosen like the de-duplication store.
    locks: RoomLocks = field(default=None)  # type: ignore[assignment]
    #: The host's CSRF protection, which checks the extension's routes where it matters.
    csrf: CSRFProtector | None = None
    #: Revoked demo guests and ended rooms, kept between requests.
    marks: Marks = field(default=None)  # type: ignore[assignment]
    #: Who took part in each session, and its once-only summary; shared like ``dedupe``.
    ledger: SessionLedger = field(default=None)  # type: ignore[assignment]
    #: Where invites are kept; by default chosen like the de-duplication store.
    invites: InviteStore = field(default=None)  # type: ignore[assignment]
    #: The extension's keys of ``app.config`` as ``init_app`` read them.
    config_snapshot: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _reported: set[str] = field(default_factory=set, repr=False)
    #: The app's OpenTelemetry tracer and instruments.
    telemetry: Telemetry = field(default_factory=Telemetry, repr=False)

    #: The one Redis client the stores chosen from the config share (``REDIS_URL``), or None.
    redis: redis.Redis | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        config = self.config
        if self.redis is None and config.redis_url:
            self.redis = connect_redis(config.redis_url, timeout=config.request_timeout)
        if self.dedupe is None:
            self.dedupe = make_dedupe_store(config, self.redis)
        if self.rooms is None:
            self.rooms = make_room_directory(config, self.redis)
        if self.locks is None:
            self.locks = make_room_locks(config, self.redis)
        if self.marks is None:
            self.marks = Marks(config, self.redis)
        if self.ledger is None:
            self.ledger = make_ledger(config, self.redis)
        if self.invites is None:
            self.invites = make_invite_store(config, self.redis)

    def report_config_changes(self, config: Mapping[str, Any]) -> None:
        """Warn once per key changed in ``app.config`` after ``init_app``, which never sees it."""
        for key, value in self.config_snapshot.items():
            if key in self._reported or config.get(key) == value:
                continue
            self._reported.add(key)
            message = (
                f"{key} changed after init_app; flask-livekit-onboarding keeps the value it "
                "read at init_app. Set configuration before calling init_app."
            )
            logger.warning("%s", message)
            warnings.warn(message, ConfigurationWarning, stacklevel=3)

    def close(self) -> None:
        """Release the LiveKit connection, the de-duplication store and locks of this app."""
        self.livekit.close()
        self.dedupe.close()
        self.locks.close()
        self.ledger.close()
        self.invites.close()
        self.rooms.close()
        if self.redis is not None:
            self.redis.close()


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
    state.report_config_changes(target.config)
    return state
