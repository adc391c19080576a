"""Per-room locks that serialize read-modify-write updates of a room's context.

LiveKit's ``UpdateRoomMetadata`` has no compare-and-set: two updates that read the same
metadata and each write their own merge lose one of them. A context update therefore holds its
room's lock from the read to the confirmed write (:func:`confirm_metadata`). The in-process
:class:`MemoryRoomLocks` serves a single process; :class:`RedisRoomLocks` serializes every
worker and host sharing ``LIVEKIT_ONBOARDING_REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .errors import ContextBusy, ContextConflict, RoomNotFound
from .livekit_bridge import LiveKitClient
from .redis_support import RedisBacked
from .rooms import live_room

if TYPE_CHECKING:
    import redis

#: Prefix of the Redis keys of room locks.
REDIS_LOCK_PREFIX = "livekit-onboarding:room-lock:"
#: Seconds between two reads of a room while waiting for LiveKit to show a write.
CONFIRM_INTERVAL = 0.02


class RoomLocks(ABC):
    """Mutual exclusion per room name, across everything that shares the locks."""

    @abstractmethod
    def acquire(self, room_name: str, wait: float, lease: float) -> Any | None:
        """Take the lock of ``room_name`` within ``wait`` seconds; a handle, or None if busy.

        A shared lock expires after ``lease`` seconds, so a process that dies holding it does
        not block the room for ever.
        """

    @abstractmethod
    def release(self, room_name: str, handle: Any) -> None:
        """Give back a lock taken with :meth:`acquire`."""

    @contextmanager
    def hold(self, room_name: str, *, wait: float, lease: float) -> Iterator[None]:
        """Hold the lock of ``room_name``; :class:`ContextBusy` (503) if not had within ``wait``."""
        handle = self.acquire(room_name, wait, lease)
        if handle is None:
            raise ContextBusy()
        try:
            yield
        finally:
            self.release(room_name, handle)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op without resources
        """Release the locks' connections."""


class MemoryRoomLocks(RoomLocks):
    """One ``threading.Lock`` per room name for the rooms being updated right now.

    A lock lives only while a request holds or waits for it, so the map is bounded by the
    number of concurrent updates. Workers do not share it: use :class:`RedisRoomLocks`.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def __repr__(self) -> str:
        return f"<MemoryRoomLocks rooms={len(self._locks)}>"

    def __len__(self) -> int:
        return len(self._locks)

    def acquire(self, room_name: str, wait: float, lease: float) -> Any | None:
        with self._guard:
            lock, users = self._locks.get(room_name, (threading.Lock(), 0))
            self._locks[room_name] = (lock, users + 1)
        if lock.acquire(timeout=wait):
            return lock
        self._leave(room_name)
        return None

    def release(self, room_name: str, handle: Any) -> None:
        handle.release()
        self._leave(room_name)

    def _leave(self, room_name: str) -> None:
        with self._guard:
            lock, users = self._locks[room_name]
            if users <= 1:
                del self._locks[room_name]
            else:
                self._locks[room_name] = (lock, users - 1)


class RedisRoomLocks(RedisBacked, RoomLocks):
    """Locks shared through Redis (redis-py's ``Lock``: ``SET key token NX PX lease``).

    Redis down means no update can be serialized: :meth:`acquire` raises :class:`ContextBusy`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        key_prefix: str = REDIS_LOCK_PREFIX,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, client=client, timeout=timeout, **redis_options)
        self.key_prefix = key_prefix

    def acquire(self, room_name: str, wait: float, lease: float) -> Any | None:
        lock = self.client.lock(
            self.key_prefix + room_name, timeout=lease, sleep=0.01, blocking_timeout=wait
        )
        try:
            return lock if lock.acquire() else None
        except self.errors as error:
            raise ContextBusy("The shared lock store (Redis) cannot be reached; retry.") from error

    def release(self, room_name: str, handle: Any) -> None:
        # Expired (the lease was too short) or Redis is gone: the lease frees it anyway.
        with contextlib.suppress(*self.errors):
            handle.release()


def make_room_locks(config: OnboardingConfig, client: redis.Redis | None = None) -> RoomLocks:
    """In-process locks, or Redis ones on the app's shared client."""
    if client is not None:
        return RedisRoomLocks(client=client, key_prefix=config.redis_key_prefix("room-lock"))
    return MemoryRoomLocks()


def lock_bounds(config: OnboardingConfig) -> tuple[float, float]:
    """How long an update waits for its room's lock, and the lease of a shared lock.

    An update makes three LiveKit calls at most (read, write, confirm), each bounded by the
    request timeout; the lease outlasts them so it never expires under a live holder.
    """
    wait = 2 * config.request_timeout
    return wait, 4 * config.request_timeout + 1


def confirm_metadata(livekit: LiveKitClient, name: str, written: str, timeout: float) -> None:
    """Wait until LiveKit's room list shows ``written`` as the metadata of room ``name``.

    ``UpdateRoomMetadata`` answers once the room has the new metadata, but LiveKit's room
    store, which the next read comes from, is updated just after. Reading it back under the
    lock makes sure the next update starts from this one. :class:`ContextConflict` (409) if
    the room shows other metadata after ``timeout`` seconds (someone wrote it without the
    lock), :class:`RoomNotFound` (404) if the room closed.
    """
    deadline = time.monotonic() + timeout
    while True:
        room = live_room(livekit, name)
        if room is None:
            raise RoomNotFound(f"No onboarding room named {name!r}.")
        if room.metadata == written:
            return
        if time.monotonic() > deadline:
            raise ContextConflict()
        time.sleep(CONFIRM_INTERVAL)
