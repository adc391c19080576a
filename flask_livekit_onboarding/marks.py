"""Short-lived marks the server keeps between requests: revoked guests, ended rooms.

A demo guest (``LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS``) lives in the signed Flask session
cookie, which the server cannot take back by itself: revoking it marks its identity for the
guest lifetime. An ``on_join`` room name held by an ended-session marker is marked until the
marker closes, so the owner's next token request replaces the marker with their new session.
In process by default, shared through ``LIVEKIT_ONBOARDING_REDIS_URL``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .errors import DedupeUnavailable
from .redis_support import import_redis

if TYPE_CHECKING:
    import redis

#: The kind of mark of a revoked demo guest.
REVOKED_GUEST = "guest-revoked"
#: The kind of mark of an ``on_join`` room name held by an ended-session marker.
ENDED_ROOM = "ended-room"
#: Most marks one process remembers; the oldest are forgotten first.
MEMORY_MAX_MARKS = 100_000


class Marks:
    """Keys marked for a number of seconds, in process or in Redis."""

    def __init__(self, config: OnboardingConfig, client: redis.Redis | None = None) -> None:
        self._memory: dict[str, float] = {}
        self._guard = threading.Lock()
        self._prefix = config.redis_key_prefix("mark")
        #: The app's shared Redis client (``LIVEKIT_ONBOARDING_REDIS_URL``), or None.
        self._client = client
        self._errors: tuple[type[Exception], ...] = (
            () if client is None else (import_redis().RedisError, OSError)
        )

    def mark(self, kind: str, key: str, seconds: int) -> None:
        """Mark ``key`` (of ``kind``: ``guest-revoked``, ``ended-room``) for ``seconds``."""
        name = f"{kind}:{key}"
        if self._client is not None:
            self._redis(lambda client: client.set(self._prefix + name, 1, ex=max(1, seconds)))
            return
        now = time.monotonic()
        with self._guard:
            self._memory = {k: v for k, v in self._memory.items() if v > now}
            if len(self._memory) >= MEMORY_MAX_MARKS:
                self._memory.pop(next(iter(self._memory)))
            self._memory[name] = now + seconds

    def marked(self, kind: str, key: str) -> bool:
        """True while ``key`` is marked (503 if the shared store cannot be reached)."""
        name = f"{kind}:{key}"
        if self._client is not None:
            return bool(self._redis(lambda client: client.exists(self._prefix + name)))
        with self._guard:
            return self._memory.get(name, 0.0) > time.monotonic()

    def clear(self, kind: str, key: str) -> None:
        """Remove the mark of ``key``."""
        name = f"{kind}:{key}"
        if self._client is not None:
            self._redis(lambda client: client.delete(self._prefix + name))
            return
        with self._guard:
            self._memory.pop(name, None)

    def _redis(self, call: Any) -> Any:
        try:
            return call(self._client)
        except self._errors as error:
            raise DedupeUnavailable("The shared store (Redis) cannot be reached; retry.") from error
