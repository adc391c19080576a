"""The app the growth-curve benchmark serves: this package, one user per ``X-Bench-User``.

``gunicorn 'benchmarks.scale_app:create_app("eager")'`` serves it. LiveKit credentials come
from the environment as for :mod:`benchmarks.apps`; ``BENCH_REDIS_URL`` puts the webhook
ledger and the room locks in Redis. Every user's session is resumed (the default policy), the
user ``bench-staff`` may update any room's context, and ``GET /bench/lock-waits`` returns (and
clears) how long each context update waited for its room's lock, in milliseconds.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from flask import Flask, jsonify, request

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.locks import RoomLocks

from .apps import CONTEXT, IDENTITY, ROOM_PREFIX, TOKEN_TTL

USER_HEADER = "X-Bench-User"
STAFF = "bench-staff"
LOCK_WAITS_PATH = "/bench/lock-waits"
#: Rooms must outlive a whole run; the benchmark closes them itself.
EMPTY_TIMEOUT = 3600


class TimedLocks(RoomLocks):
    """The app's room locks, recording how long each acquisition waited."""

    def __init__(self, inner: RoomLocks) -> None:
        self.inner = inner
        self.waits_ms: list[float] = []
        self._lock = threading.Lock()

    def acquire(self, room_name: str, wait: float, lease: float) -> Any | None:
        started = time.perf_counter()
        handle = self.inner.acquire(room_name, wait, lease)
        waited = 1000 * (time.perf_counter() - started)
        with self._lock:
            self.waits_ms.append(waited)
        return handle

    def release(self, room_name: str, handle: Any) -> None:
        self.inner.release(room_name, handle)

    def close(self) -> None:
        self.inner.close()

    def drain(self) -> list[float]:
        with self._lock:
            waits, self.waits_ms = self.waits_ms, []
        return waits


def create_app(mode: str = "eager") -> Flask:
    """This package with ``LIVEKIT_ONBOARDING_ROOM_CREATION = mode``."""
    app = Flask("bench-scale-" + mode)
    app.config.update(
        LIVEKIT_URL=os.environ["LIVEKIT_URL"],
        LIVEKIT_API_KEY=os.environ["LIVEKIT_API_KEY"],
        LIVEKIT_API_SECRET=os.environ["LIVEKIT_API_SECRET"],
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
        LIVEKIT_ONBOARDING_ROOM_PREFIX=ROOM_PREFIX,
        LIVEKIT_ONBOARDING_TOKEN_TTL=TOKEN_TTL,
        LIVEKIT_ONBOARDING_EMPTY_TIMEOUT=EMPTY_TIMEOUT,
        LIVEKIT_ONBOARDING_REDIS_URL=os.environ.get("BENCH_REDIS_URL") or None,
    )
    onboarding = LiveKitOnboarding()

    @onboarding.identity_loader
    def load_identity() -> Identity:
        return Identity(identity=request.headers.get(USER_HEADER, IDENTITY))

    @onboarding.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return dict(CONTEXT)

    @onboarding.room_authorizer
    def staff_may(identity: Identity, room: Any, action: str) -> bool:
        return identity.identity == STAFF

    onboarding.init_app(app)
    state = app.extensions["livekit_onboarding"]
    locks = state.locks = TimedLocks(state.locks)

    @app.get(LOCK_WAITS_PATH)
    def lock_waits() -> Any:
        return jsonify(waits_ms=locks.drain())

    return app
