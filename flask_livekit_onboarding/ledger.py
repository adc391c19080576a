"""What the host remembers about a session for its summary: who took part, and that it ended.

A session may end on any app host (the ``room_finished`` webhook, or ``DELETE`` on another
host), so this lives in a store every host shares: :class:`RedisSessionLedger` when
``LIVEKIT_ONBOARDING_REDIS_URL`` is set, else the in-process :class:`MemorySessionLedger`.
(The summary itself is claimed once through the webhook de-duplication store.)
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .errors import DedupeUnavailable
from .redis_support import RedisBacked

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys of the ledger.
REDIS_LEDGER_PREFIX = "livekit-onboarding:session:"
#: Seconds a session's entries are kept: far longer than an onboarding session lasts.
LEDGER_SECONDS = 24 * 3600
#: Most sessions the in-process ledger remembers at once.
MEMORY_MAX_SESSIONS = 100_000


class SessionLedger(ABC):
    """Participants per session, and which sessions have ended.

    Every method must be shared by everything that shares the store, and raise
    :class:`DedupeUnavailable` when the store cannot answer.
    """

    @abstractmethod
    def add_participant(self, session_id: str, identity: str, kind: str) -> None:
        """Remember that ``identity`` took part, admitted as ``kind`` (its role: ``owner``,
        ``staff``, ``participant``, ``viewer`` or ``agent``)."""

    @abstractmethod
    def participants(self, session_id: str) -> dict[str, str]:
        """Everyone remembered for ``session_id``: identity -> kind."""

    @abstractmethod
    def mark_ended(self, session_id: str) -> None:
        """Remember that ``session_id`` has ended: reports for it are refused from now on."""

    @abstractmethod
    def ended(self, session_id: str) -> bool:
        """Whether ``session_id`` has ended."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op without resources
        """Release the store's connections."""


class MemorySessionLedger(SessionLedger):
    """The ledger of a single process: thread-safe, bounded, expiring."""

    def __init__(self, max_sessions: int = MEMORY_MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[dict[str, str], float]] = OrderedDict()
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemorySessionLedger sessions={len(self._sessions)}>"

    def add_participant(self, session_id: str, identity: str, kind: str) -> None:
        with self._lock:
            entry = self._live(self._sessions, session_id)
            people = entry[0] if entry is not None else {}
            people.setdefault(identity, kind)
            self._put(self._sessions, session_id, (people, time.monotonic() + LEDGER_SECONDS))

    def participants(self, session_id: str) -> dict[str, str]:
        with self._lock:
            entry = self._live(self._sessions, session_id)
            return dict(entry[0]) if entry is not None else {}

    def mark_ended(self, session_id: str) -> None:
        with self._lock:
            self._put(self._ended, session_id, time.monotonic() + LEDGER_SECONDS)

    def ended(self, session_id: str) -> bool:
        with self._lock:
            return self._live(self._ended, session_id) is not None

    @staticmethod
    def _live(entries: OrderedDict[str, Any], key: str) -> Any:
        value = entries.get(key)
        if value is None:
            return None
        expiry = value[1] if isinstance(value, tuple) else value
        if expiry <= time.monotonic():
            entries.pop(key, None)
            return None
        return value

    def _put(self, entries: OrderedDict[str, Any], key: str, value: Any) -> None:
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self.max_sessions:
            entries.popitem(last=False)


class RedisSessionLedger(RedisBacked, SessionLedger):
    """The ledger shared through Redis: a hash of participants and an "ended" key per session."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        key_prefix: str = REDIS_LEDGER_PREFIX,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, client=client, timeout=timeout, **redis_options)
        self.key_prefix = key_prefix

    def add_participant(self, session_id: str, identity: str, kind: str) -> None:
        key = f"{self.key_prefix}{session_id}:participants"
        try:
            with self.client.pipeline() as pipe:
                pipe.hsetnx(key, identity, kind)
                pipe.expire(key, LEDGER_SECONDS)
                pipe.execute()
        except self.errors as error:
            raise DedupeUnavailable() from error

    def participants(self, session_id: str) -> dict[str, str]:
        try:
            found = self.client.hgetall(f"{self.key_prefix}{session_id}:participants")
        except self.errors as error:
            raise DedupeUnavailable() from error
        return {_text(k): _text(v) for k, v in found.items()}

    def mark_ended(self, session_id: str) -> None:
        try:
            self.client.set(f"{self.key_prefix}{session_id}:ended", 1, ex=LEDGER_SECONDS)
        except self.errors as error:
            raise DedupeUnavailable() from error

    def ended(self, session_id: str) -> bool:
        try:
            return bool(self.client.exists(f"{self.key_prefix}{session_id}:ended"))
        except self.errors as error:
            raise DedupeUnavailable() from error

    def close(self) -> None:
        self.client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def make_ledger(config: OnboardingConfig, client: redis.Redis | None = None) -> SessionLedger:
    """The in-process ledger, or the Redis one on the app's shared client."""
    if client is not None:
        return RedisSessionLedger(client=client, key_prefix=config.redis_key_prefix("session"))
    return MemorySessionLedger()
