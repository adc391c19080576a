"""A stand-in for the LiveKit server API, for unit tests only."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from livekit import api

from flask_livekit_onboarding.livekit_bridge import server_error

T = TypeVar("T")


class FakeRoomService:
    """Keeps rooms in memory and answers like RoomService for the calls the extension makes."""

    def __init__(self) -> None:
        self.rooms: dict[str, api.Room] = {}
        self.requests: list[Any] = []

    async def create_room(self, request: api.CreateRoomRequest) -> api.Room:
        self.requests.append(request)
        room = self.rooms.get(request.name)
        if room is None:
            room = api.Room(
                name=request.name,
                sid=f"RM_{len(self.rooms)}",
                metadata=request.metadata,
                empty_timeout=request.empty_timeout,
                departure_timeout=request.departure_timeout,
                max_participants=request.max_participants,
                creation_time=int(time.time()),
            )
            self.rooms[request.name] = room
        return room

    async def list_rooms(self, request: api.ListRoomsRequest) -> api.ListRoomsResponse:
        self.requests.append(request)
        names = set(request.names)
        rooms = [r for r in self.rooms.values() if not names or r.name in names]
        return api.ListRoomsResponse(rooms=rooms)


class FakeLiveKit:
    def __init__(self) -> None:
        self.room = FakeRoomService()


class FakeBridge:
    """Runs the extension's coroutines on a fresh loop against :class:`FakeLiveKit`.

    ``fail_with`` makes every call raise that exception instead, as the real bridge does when
    LiveKit is unreachable or slow; LiveKit error answers are translated as the real bridge
    translates them.
    """

    timeout = 5.0

    def __init__(self) -> None:
        self.livekit = FakeLiveKit()
        self.fail_with: Exception | None = None
        self.calls = 0

    def call(self, fn: Callable[[Any], Awaitable[T]], *, timeout: float | None = None) -> T:
        import asyncio

        self.calls += 1
        try:
            if self.fail_with is not None:
                raise self.fail_with
            return asyncio.run(fn(self.livekit))  # type: ignore[arg-type]
        except api.TwirpError as error:
            raise server_error(error) from None

    def close(self) -> None:
        pass
