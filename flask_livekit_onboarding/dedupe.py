"""Stores that remember webhook event ids so each event reaches the host at most once.

LiveKit retries a webhook it could not deliver and may deliver one twice. The webhook view asks
the app's store whether an event id is new before it sends any signal. The in-process
:class:`MemoryDedupe` serves a single process; :class:`RedisDedupe` is shared by every worker
and host that uses the same Redis (``LIVEKIT_ONBOARDING_REDIS_URL``). Any other shared store
fits behind :class:`WebhookDedupe`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .errors import ConfigurationError, DedupeUnavailable

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys holding seen event ids.
REDIS_KEY_PREFIX = "livekit-onboarding:webhook:"
#: Most event ids the in-process store remembers at once.
MEMORY_MAX_ENTRIES = 100_000


class WebhookDedupe(ABC):
    """Remembers webhook event ids for a while.

    ``first_time(event_id, window)`` is True the first time an id is seen and False for any
    repeat within ``window`` seconds. It must be atomic across everything that shares the
    store, and raise :class:`DedupeUnavailable` when it cannot answer.
    """

    @abstractmethod
    def first_time(self, event_id: str, window: int) -> bool:
        """Record ``event_id``; True unless it was already recorded in the last ``window`` s."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for stores without resources
        """Release the store's connections (called when the app's state is closed)."""


class MemoryDedupe(WebhookDedupe):
    """Thread-safe, expiring, bounded store for a single process.

    At most ``max_entries`` ids are kept; past that the oldest are forgotten first, so under a
    flood of more than ``max_entries`` events per window a late duplicate could get through.
    Workers of one app do not share it: use :class:`RedisDedupe` with several processes.
    """

    def __init__(self, max_entries: int = MEMORY_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryDedupe entries={len(self._expiries)} max_entries={self.max_entries}>"

    def __len__(self) -> int:
        return len(self._expiries)

    def first_time(self, event_id: str, window: int) -> bool:
        now = time.monotonic()
        with self._lock:
            self._forget_expired(now)
            expiry = self._expiries.get(event_id)
            if expiry is not None and expiry > now:
                return False
            self._expiries[event_id] = now + window
            self._expiries.move_to_end(event_id)
            while len(self._expiries) > self.max_entries:
                self._expiries.popitem(last=False)
            return True

    def _forget_expired(self, now: float) -> None:
        # Ids are kept in insertion order, which is expiry order for a constant window.
        while self._expiries:
            oldest, expiry = next(iter(self._expiries.items()))
            if expiry > now:
                return
            del self._expiries[oldest]


class RedisDedupe(WebhookDedupe):
    """Store shared through Redis with one atomic ``SET key 1 NX EX window`` per event.

    Needs the ``redis`` package (``pip install flask-livekit-onboarding[redis]``). Commands are
    not retried and time out after ``timeout`` seconds, so an unreachable Redis answers LiveKit
    with a 503 quickly and LiveKit delivers the event again later.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        key_prefix: str = REDIS_KEY_PREFIX,
        **redis_options: Any,
    ) -> None:
        redis_module = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(redis_options)
        try:
            self._client: redis.Redis = redis_module.Redis.from_url(url, **options)
        except ValueError as error:
            raise ConfigurationError(
                f"LIVEKIT_ONBOARDING_REDIS_URL is not a usable Redis URL: {error}"
            ) from None
        self._errors: tuple[type[Exception], ...] = (redis_module.RedisError, OSError)
        self.key_prefix = key_prefix

    def __repr__(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"<RedisDedupe {where} db={kwargs.get('db', 0)}>"

    @property
    def client(self) -> redis.Redis:
        """The underlying ``redis.Redis`` client."""
        return self._client

    def first_time(self, event_id: str, window: int) -> bool:
        try:
            return bool(self._client.set(self.key_prefix + event_id, 1, nx=True, ex=window))
        except self._errors as error:
            raise DedupeUnavailable() from error

    def close(self) -> None:
        self._client.close()


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "LIVEKIT_ONBOARDING_REDIS_URL needs the redis package: "
            "pip install 'flask-livekit-onboarding[redis]'"
        ) from None
    return redis


def make_dedupe_store(config: OnboardingConfig) -> WebhookDedupe:
    """The in-process store, or the Redis one when ``LIVEKIT_ONBOARDING_REDIS_URL`` is set."""
    if config.redis_url:
        return RedisDedupe(config.redis_url, timeout=config.request_timeout)
    return MemoryDedupe()
