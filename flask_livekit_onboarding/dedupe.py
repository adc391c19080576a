"""Stores that remember webhook event ids so each event reaches the host once.

LiveKit retries a webhook it could not deliver and may deliver one twice. The webhook view asks
the app's store whether an event id is new before it sends any signal:

- at most once, :meth:`WebhookDedupe.first_time` records the id for the whole window at once;
- at least once, :meth:`WebhookDedupe.claim` holds the id for a short time while the signals
  are sent, :meth:`WebhookDedupe.complete` then records it for the window, and
  :meth:`WebhookDedupe.release` forgets it when delivery failed, so LiveKit's retry is taken.
  A process that dies while delivering leaves only the short claim behind.

The stores also remember which rooms are onboarding rooms (:meth:`WebhookDedupe.remember_room`),
for events such as ``egress_ended`` that LiveKit sends without the room's metadata. The
in-process :class:`MemoryDedupe` serves a single process; :class:`RedisDedupe` is shared by
every worker and host that uses the same Redis (``LIVEKIT_ONBOARDING_REDIS_URL``). Any other
shared store fits behind :class:`WebhookDedupe`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .config import OnboardingConfig
from .errors import ConfigurationError, DedupeUnavailable

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys holding seen event ids.
REDIS_KEY_PREFIX = "livekit-onboarding:webhook:"
#: Prefix of the Redis keys remembering onboarding rooms.
REDIS_ROOM_KEY_PREFIX = "livekit-onboarding:room:"
#: Most event ids (and, apart, rooms) the in-process store remembers at once.
MEMORY_MAX_ENTRIES = 100_000
#: Seconds a room is remembered after the last event that showed its metadata.
ROOM_MEMORY_SECONDS = 24 * 3600

#: What :meth:`WebhookDedupe.claim` found: ``new`` (the caller holds the id now), ``busy``
#: (another delivery holds it), ``done`` (delivered within the window).
ClaimState = Literal["new", "busy", "done"]
_DONE: ClaimState = "done"


@dataclass(frozen=True)
class Claim:
    """The answer of :meth:`WebhookDedupe.claim`; ``retry_after`` is set for ``busy``."""

    state: ClaimState
    retry_after: int = 0
    token: str = ""


@dataclass(frozen=True)
class RememberedRoom:
    """A room seen in a webhook with this deployment's onboarding metadata."""

    sid: str
    metadata: str


class WebhookDedupe(ABC):
    """Remembers webhook event ids for a while.

    ``first_time(event_id, window)`` is True the first time an id is seen and False for any
    repeat within ``window`` seconds. It must be atomic across everything that shares the
    store, and raise :class:`DedupeUnavailable` when it cannot answer. At-least-once delivery
    (the default) also needs :meth:`release`; a store that implements only
    :meth:`first_time` gets one-phase claims, which a process dying mid-delivery uses up.
    """

    @abstractmethod
    def first_time(self, event_id: str, window: int) -> bool:
        """Record ``event_id``; True unless it was already recorded in the last ``window`` s."""

    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        """Hold ``event_id`` for ``hold`` seconds while it is delivered, unless it is held or done.

        The default records it for the whole ``window`` at once (one phase).
        """
        return Claim("new") if self.first_time(event_id, window) else Claim(_DONE)

    def complete(self, event_id: str, window: int, claim: Claim) -> None:  # noqa: B027
        """Record ``event_id`` as delivered for ``window`` seconds (after :meth:`claim`)."""

    def release(self, event_id: str, claim: Claim | None = None) -> None:
        """Forget ``event_id`` (delivery failed), so the next delivery of it is taken.

        With ``claim``, only that claim is dropped, not one another process took since.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot release an event id")

    def remember_room(self, name: str, room: RememberedRoom) -> None:  # noqa: B027
        """Remember that ``name`` is an onboarding room (a no-op for stores without it)."""

    def recall_room(self, name: str) -> RememberedRoom | None:
        """The onboarding room remembered under ``name``, if any."""
        return None

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
        self._claims: dict[str, tuple[str, float]] = {}
        self._rooms: OrderedDict[str, tuple[RememberedRoom, float]] = OrderedDict()
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

    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        now = time.monotonic()
        with self._lock:
            self._forget_expired(now)
            expiry = self._expiries.get(event_id)
            if expiry is not None and expiry > now:
                return Claim(_DONE)
            held = self._claims.get(event_id)
            if held is not None and held[1] > now:
                return Claim("busy", retry_after=max(1, int(held[1] - now + 0.999)))
            token = secrets.token_hex(8)
            self._claims[event_id] = (token, now + hold)
            if len(self._claims) > self.max_entries:
                self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
            return Claim("new", token=token)

    def complete(self, event_id: str, window: int, claim: Claim) -> None:
        now = time.monotonic()
        with self._lock:
            self._claims.pop(event_id, None)
            self._expiries[event_id] = now + window
            self._expiries.move_to_end(event_id)
            while len(self._expiries) > self.max_entries:
                self._expiries.popitem(last=False)

    def release(self, event_id: str, claim: Claim | None = None) -> None:
        with self._lock:
            held = self._claims.get(event_id)
            if held is not None and (claim is None or held[0] == claim.token):
                del self._claims[event_id]
            if claim is None:
                self._expiries.pop(event_id, None)

    def remember_room(self, name: str, room: RememberedRoom) -> None:
        with self._lock:
            self._rooms[name] = (room, time.monotonic() + ROOM_MEMORY_SECONDS)
            self._rooms.move_to_end(name)
            while len(self._rooms) > self.max_entries:
                self._rooms.popitem(last=False)

    def recall_room(self, name: str) -> RememberedRoom | None:
        with self._lock:
            entry = self._rooms.get(name)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _forget_expired(self, now: float) -> None:
        # Ids are kept in insertion order, which is expiry order for a constant window.
        while self._expiries:
            oldest, expiry = next(iter(self._expiries.items()))
            if expiry > now:
                return
            del self._expiries[oldest]


class RedisDedupe(WebhookDedupe):
    """Store shared through Redis with one atomic ``SET key … NX`` per event.

    At most once: ``SET key 1 NX EX window``. At least once: ``SET key claim:<token> NX PX
    hold`` while delivering, then ``SET key done EX window``, or a compare-and-delete of the
    claim when delivery failed.

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
        room_key_prefix: str = REDIS_ROOM_KEY_PREFIX,
        **redis_options: Any,
    ) -> None:
        redis_module = _import_redis()
        self._client: redis.Redis = connect_redis(url, timeout=timeout, **redis_options)
        self._errors: tuple[type[Exception], ...] = (redis_module.RedisError, OSError)
        self.key_prefix = key_prefix
        self.room_key_prefix = room_key_prefix

    def __repr__(self) -> str:
        return f"<RedisDedupe {redis_location(self._client)}>"

    @property
    def client(self) -> redis.Redis:
        """The underlying ``redis.Redis`` client."""
        return self._client

    def first_time(self, event_id: str, window: int) -> bool:
        try:
            return bool(self._client.set(self.key_prefix + event_id, 1, nx=True, ex=window))
        except self._errors as error:
            raise DedupeUnavailable() from error

    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        key = self.key_prefix + event_id
        token = secrets.token_hex(8)
        try:
            if self._client.set(key, f"claim:{token}", nx=True, px=hold * 1000):
                return Claim("new", token=token)
            with self._client.pipeline() as pipe:
                pipe.get(key)
                pipe.pttl(key)
                value, ttl = pipe.execute()
        except self._errors as error:
            raise DedupeUnavailable() from error
        if value is None:  # it expired in between: let LiveKit come back for it at once
            return Claim("busy", retry_after=1)
        if not bytes(value).startswith(b"claim:"):
            return Claim(_DONE)
        return Claim("busy", retry_after=max(1, (int(ttl) + 999) // 1000))

    def complete(self, event_id: str, window: int, claim: Claim) -> None:
        try:
            self._client.set(self.key_prefix + event_id, _DONE, ex=window)
        except self._errors as error:
            raise DedupeUnavailable() from error

    def release(self, event_id: str, claim: Claim | None = None) -> None:
        key = self.key_prefix + event_id
        try:
            if claim is None:
                self._client.delete(key)
            else:
                self._client.eval(_RELEASE_SCRIPT, 1, key, f"claim:{claim.token}")
        except self._errors as error:
            raise DedupeUnavailable() from error

    def remember_room(self, name: str, room: RememberedRoom) -> None:
        value = json.dumps({"sid": room.sid, "metadata": room.metadata})
        try:
            self._client.set(self.room_key_prefix + name, value, ex=ROOM_MEMORY_SECONDS)
        except self._errors as error:
            raise DedupeUnavailable() from error

    def recall_room(self, name: str) -> RememberedRoom | None:
        try:
            value = self._client.get(self.room_key_prefix + name)
        except self._errors as error:
            raise DedupeUnavailable() from error
        if value is None:
            return None
        try:
            document = json.loads(value)
            return RememberedRoom(str(document["sid"]), str(document["metadata"]))
        except (ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        self._client.close()


#: Delete a claim only if it is still the caller's (another process may have taken it over).
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "LIVEKIT_ONBOARDING_REDIS_URL needs the redis package: "
            "pip install 'flask-livekit-onboarding[redis]'"
        ) from None
    return redis


def redis_location(client: redis.Redis) -> str:
    """Where ``client`` connects (host and port, or socket path, and db), without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return f"{where} db={kwargs.get('db', 0)}"


def connect_redis(url: str, *, timeout: float = 5.0, **redis_options: Any) -> redis.Redis:
    """A Redis client for ``url`` that never retries and waits at most ``timeout`` seconds."""
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
        client: redis.Redis = redis_module.Redis.from_url(url, **options)
    except ValueError as error:
        raise ConfigurationError(
            f"LIVEKIT_ONBOARDING_REDIS_URL is not a usable Redis URL: {error}"
        ) from None
    return client


def make_dedupe_store(config: OnboardingConfig) -> WebhookDedupe:
    """The in-process store, or the Redis one when ``LIVEKIT_ONBOARDING_REDIS_URL`` is set."""
    if config.redis_url:
        return RedisDedupe(
            config.redis_url,
            timeout=config.request_timeout,
            key_prefix=config.redis_key_prefix("webhook"),
            room_key_prefix=config.redis_key_prefix("room"),
        )
    return MemoryDedupe()
