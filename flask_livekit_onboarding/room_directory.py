"""Which rooms are onboarding rooms, remembered for webhooks that do not carry the room.

LiveKit sends ``egress_*``, ``ingress_*`` and some track events without the room's metadata,
and the room may be gone by then. Every event that does show an onboarding room's envelope is
remembered here (the envelope without the users' notes, bounded by the host's context), so
those later events can still be told apart. In process by default, shared through
``LIVEKIT_ONBOARDING_REDIS_URL``.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import OnboardingConfig
from .errors import DedupeUnavailable
from .redis_support import RedisBacked

if TYPE_CHECKING:
    import redis

#: Seconds a room is remembered after the last event that showed its metadata.
ROOM_MEMORY_SECONDS = 24 * 3600
#: Most rooms the in-process directory remembers at once; the oldest are forgotten first.
MEMORY_MAX_ROOMS = 100_000


@dataclass(frozen=True)
class RememberedRoom:
    """A room seen in a webhook with this deployment's onboarding metadata."""

    sid: str
    metadata: str


class RoomDirectory(ABC):
    """Onboarding rooms by name, each kept :data:`ROOM_MEMORY_SECONDS`.

    Both methods raise :class:`DedupeUnavailable` when a shared store cannot answer.
    """

    @abstractmethod
    def remember(self, name: str, room: RememberedRoom) -> None:
        """Remember that ``name`` is (or was) the onboarding room ``room``."""

    @abstractmethod
    def recall(self, name: str) -> RememberedRoom | None:
        """The onboarding room remembered under ``name``, if any."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for stores without resources
        """Release the directory's connections."""


class MemoryRoomDirectory(RoomDirectory):
    """The rooms one process has seen: thread-safe, expiring, bounded."""

    def __init__(self, max_rooms: int = MEMORY_MAX_ROOMS) -> None:
        self.max_rooms = max_rooms
        self._rooms: OrderedDict[str, tuple[RememberedRoom, float]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, name: str, room: RememberedRoom) -> None:
        with self._lock:
            self._rooms[name] = (room, time.monotonic() + ROOM_MEMORY_SECONDS)
            self._rooms.move_to_end(name)
            while len(self._rooms) > self.max_rooms:
                self._rooms.popitem(last=False)

    def recall(self, name: str) -> RememberedRoom | None:
        with self._lock:
            entry = self._rooms.get(name)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


class RedisRoomDirectory(RedisBacked, RoomDirectory):
    """The rooms every worker and host sharing the Redis has seen, one expiring key each."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        timeout: float = 5.0,
        key_prefix: str = "livekit-onboarding:room:",
        **redis_options: Any,
    ) -> None:
        super().__init__(url, client=client, timeout=timeout, **redis_options)
        self.key_prefix = key_prefix

    def remember(self, name: str, room: RememberedRoom) -> None:
        value = json.dumps({"sid": room.sid, "metadata": room.metadata})
        try:
            self.client.set(self.key_prefix + name, value, ex=ROOM_MEMORY_SECONDS)
        except self.errors as error:
            raise DedupeUnavailable() from error

    def recall(self, name: str) -> RememberedRoom | None:
        try:
            value = self.client.get(self.key_prefix + name)
        except self.errors as error:
            raise DedupeUnavailable() from error
        if value is None:
            return None
        try:
            document = json.loads(value)
            return RememberedRoom(str(document["sid"]), str(document["metadata"]))
        except (ValueError, KeyError, TypeError):
            return None


def make_room_directory(
    config: OnboardingConfig, client: redis.Redis | None = None
) -> RoomDirectory:
    """The in-process directory, or the Redis one on the app's shared client."""
    if client is not None:
        return RedisRoomDirectory(client=client, key_prefix=config.redis_key_prefix("room"))
    return MemoryRoomDirectory()
