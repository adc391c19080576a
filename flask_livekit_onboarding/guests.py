"""Revoked demo guests: a guest cookie copied elsewhere stops counting once revoked.

A guest (``LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS``) lives in the signed Flask session cookie,
which the server cannot take back by itself. Revoking a guest records its identity here for
the guest lifetime (after which no cookie carries it anyway); the browser that presents it
gets a new guest. In process by default, shared through ``LIVEKIT_ONBOARDING_REDIS_URL``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .dedupe import _import_redis, connect_redis
from .errors import DedupeUnavailable

if TYPE_CHECKING:
    import redis

#: Most revoked guests one process remembers; the oldest are forgotten first.
MEMORY_MAX_GUESTS = 100_000


class RevokedGuests:
    """The guests revoked within the guest lifetime, in process or in Redis."""

    def __init__(self, config: OnboardingConfig) -> None:
        self._ttl = config.guest_ttl
        self._memory: dict[str, float] = {}
        self._guard = threading.Lock()
        self._prefix = config.redis_key_prefix("guest-revoked")
        self._client: redis.Redis | None = None
        self._errors: tuple[type[Exception], ...] = ()
        if config.redis_url:
            redis_module = _import_redis()
            self._client = connect_redis(config.redis_url, timeout=config.request_timeout)
            self._errors = (redis_module.RedisError, OSError)

    def revoke(self, identity: str) -> None:
        """Refuse the guest ``identity`` from now on (for the guest lifetime)."""
        if self._client is not None:
            self._redis(lambda client: client.set(self._prefix + identity, 1, ex=self._ttl))
            return
        now = time.monotonic()
        with self._guard:
            self._memory = {k: v for k, v in self._memory.items() if v > now}
            if len(self._memory) >= MEMORY_MAX_GUESTS:
                self._memory.pop(next(iter(self._memory)))
            self._memory[identity] = now + self._ttl

    def revoked(self, identity: str) -> bool:
        """True when the guest ``identity`` was revoked (503 if the shared store is down)."""
        if self._client is not None:
            return bool(self._redis(lambda client: client.exists(self._prefix + identity)))
        with self._guard:
            return self._memory.get(identity, 0.0) > time.monotonic()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _redis(self, call: Any) -> Any:
        try:
            return call(self._client)
        except self._errors as error:
            raise DedupeUnavailable("The shared store (Redis) cannot be reached; retry.") from error
