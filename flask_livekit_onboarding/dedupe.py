"""Stores that remember webhook event ids so each event reaches the host once.

LiveKit retries a webhook it could not deliver and may deliver one twice. The webhook view asks
the app's store whether an event id is new before it sends any signal:

- at most once, :meth:`WebhookDedupe.first_time` records the id for the whole window at once;
- at least once, :meth:`WebhookDedupe.claim` holds the id for a short time while the signals
  are sent, :meth:`WebhookDedupe.complete` then records it for the window, and
  :meth:`WebhookDedupe.release` forgets it when delivery failed, so LiveKit's retry is taken.
  A process that dies while delivering leaves only the short claim behind.

The in-process :class:`MemoryDedupe` serves a single process; :class:`RedisDedupe` is shared
by every worker and host that uses the same Redis (``LIVEKIT_ONBOARDING_REDIS_URL``). Any other
shared store fits behind :class:`WebhookDedupe`: its three methods are all abstract, so a store
missing one fails when it is constructed, and
:func:`flask_livekit_onboarding.testing.check_dedupe_store` checks one against the contract.
"""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .config import OnboardingConfig
from .errors import DedupeUnavailable
from .redis_support import RedisBacked

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys holding seen event ids.
REDIS_KEY_PREFIX = "livekit-onboarding:webhook:"
#: Most event ids the in-process store remembers at once.
MEMORY_MAX_ENTRIES = 100_000

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


class WebhookDedupe(ABC):
    """Remembers webhook event ids for a while, atomically for everything sharing the store.

    :meth:`claim`, :meth:`complete` and :meth:`release` are the contract; each raises
    :class:`DedupeUnavailable` when the store cannot answer (LiveKit then gets a 503 and
    retries). :meth:`first_time` (at most once) is built on them; stores may answer it in one
    step instead.
    """

    @abstractmethod
    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        """Hold ``event_id`` for ``hold`` seconds while it is delivered.

        ``new`` (with a token) if nobody holds it and it was not completed within ``window``
        seconds; ``busy`` (with ``retry_after``) while another claim holds it; ``done`` once
        it was completed.
        """

    @abstractmethod
    def complete(self, event_id: str, window: int, claim: Claim) -> None:
        """Record ``event_id`` as delivered for ``window`` seconds (after a ``new`` claim)."""

    @abstractmethod
    def release(self, event_id: str, claim: Claim | None = None) -> None:
        """Forget ``event_id`` (delivery failed), so the next delivery of it is taken.

        With ``claim``, only that claim is dropped, not one another process took since;
        without, the id is forgotten whatever holds it.
        """

    def first_time(self, event_id: str, window: int) -> bool:
        """Record ``event_id`` for ``window`` seconds; True unless it was recorded already."""
        claim = self.claim(event_id, window, window)
        if claim.state != "new":
            return False
        self.complete(event_id, window, claim)
        return True

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

    def _forget_expired(self, now: float) -> None:
        # Ids are kept in insertion order, which is expiry order for a constant window.
        while self._expiries:
            oldest, expiry = next(iter(self._expiries.items()))
            if expiry > now:
                return
            del self._expiries[oldest]


class RedisDedupe(RedisBacked, WebhookDedupe):
    """Store shared through Redis with one atomic ``SET key … NX`` per event.

    At most once: ``SET key 1 NX EX window``. At least once: ``SET key claim:<token> NX PX
    hold`` while delivering, then ``SET key done EX window``, or a compare-and-delete of the
    claim when delivery failed.

    Needs the ``redis`` package (``pip install flask-livekit-onboarding[redis]``). Built from
    ``url`` it opens its own client; ``init_app`` hands it the app's shared ``client``.
    Commands are not retried and time out after ``timeout`` seconds, so an unreachable Redis
    answers LiveKit with a 503 quickly and LiveKit delivers the event again later.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        key_prefix: str = REDIS_KEY_PREFIX,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, client=client, timeout=timeout, **redis_options)
        self.key_prefix = key_prefix

    def first_time(self, event_id: str, window: int) -> bool:
        try:
            return bool(self.client.set(self.key_prefix + event_id, 1, nx=True, ex=window))
        except self.errors as error:
            raise DedupeUnavailable() from error

    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        key = self.key_prefix + event_id
        token = secrets.token_hex(8)
        try:
            if self.client.set(key, f"claim:{token}", nx=True, px=hold * 1000):
                return Claim("new", token=token)
            with self.client.pipeline() as pipe:
                pipe.get(key)
                pipe.pttl(key)
                value, ttl = pipe.execute()
        except self.errors as error:
            raise DedupeUnavailable() from error
        if value is None:  # it expired in between: let LiveKit come back for it at once
            return Claim("busy", retry_after=1)
        if not bytes(value).startswith(b"claim:"):
            return Claim(_DONE)
        return Claim("busy", retry_after=max(1, (int(ttl) + 999) // 1000))

    def complete(self, event_id: str, window: int, claim: Claim) -> None:
        try:
            self.client.set(self.key_prefix + event_id, _DONE, ex=window)
        except self.errors as error:
            raise DedupeUnavailable() from error

    def release(self, event_id: str, claim: Claim | None = None) -> None:
        key = self.key_prefix + event_id
        try:
            if claim is None:
                self.client.delete(key)
            else:
                self.client.eval(_RELEASE_SCRIPT, 1, key, f"claim:{claim.token}")
        except self.errors as error:
            raise DedupeUnavailable() from error


#: Delete a claim only if it is still the caller's (another process may have taken it over).
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def make_dedupe_store(config: OnboardingConfig, client: redis.Redis | None = None) -> WebhookDedupe:
    """The in-process store, or the Redis one on the app's shared client."""
    if client is not None:
        return RedisDedupe(client=client, key_prefix=config.redis_key_prefix("webhook"))
    return MemoryDedupe()
