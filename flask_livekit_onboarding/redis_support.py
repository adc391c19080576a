"""Redis for the extension's shared stores: one client per app, bounded, never retried.

With ``LIVEKIT_ONBOARDING_REDIS_URL`` set, ``init_app`` opens one client and every store of
the app (webhook de-duplication, the room directory, locks, marks, the session ledger,
invites) shares it; a store built by hand from a URL opens (and closes) its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    import redis


def import_redis() -> Any:
    """The ``redis`` package, or a configuration error naming the extra that brings it."""
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "LIVEKIT_ONBOARDING_REDIS_URL needs the redis package: "
            "pip install 'flask-livekit-onboarding[redis]'"
        ) from None
    return redis


def connect_redis(url: str, *, timeout: float = 5.0, **redis_options: Any) -> redis.Redis:
    """A Redis client for ``url`` that never retries and waits at most ``timeout`` seconds."""
    redis_module = import_redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    options.update(redis_options)
    try:
        client: redis.Redis = redis_module.Redis.from_url(url, **options)
    except ValueError as error:
        raise ConfigurationError(
            f"LIVEKIT_ONBOARDING_REDIS_URL is not a usable Redis URL: {error}"
        ) from None
    return client


def redis_location(client: redis.Redis) -> str:
    """Where ``client`` connects (host and port, or socket path, and db), without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return f"{where} db={kwargs.get('db', 0)}"


class RedisBacked:
    """A store on one Redis client: the app's shared ``client``, or its own from ``url``.

    ``errors`` holds what a failed command raises (Redis errors and socket errors); each store
    turns them into its own 503. :meth:`close` closes only a client the store opened itself.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        **redis_options: Any,
    ) -> None:
        redis_module = import_redis()
        self.errors: tuple[type[Exception], ...] = (redis_module.RedisError, OSError)
        self._owns_client = client is None
        if client is None:
            if url is None:
                raise TypeError(f"{type(self).__name__} needs a Redis url or client")
            client = connect_redis(url, timeout=timeout, **redis_options)
        self._client: redis.Redis = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redis_location(self._client)}>"

    @property
    def client(self) -> redis.Redis:
        """The underlying ``redis.Redis`` client."""
        return self._client

    def close(self) -> None:
        """Close the client if this store opened it (the app closes a shared one)."""
        if self._owns_client:
            self._client.close()
